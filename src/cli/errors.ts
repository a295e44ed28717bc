// UsageError lives in src/errors.ts (shared with src/bench-serve/); re-exported for the CLI's modules.
export { UsageError } from '../errors.ts';
