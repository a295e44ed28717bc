// Errors shared across layers. UsageError: a mistake in how a command or a function was called
// (a bad flag, a bad option value); the CLI prints it without a stack trace and exits with code 2.
// Its home is here, below both the CLI (src/cli/) and the modules the CLI drives (src/bench-serve/),
// so that neither imports the other for it.

export class UsageError extends Error {
  override name = 'UsageError';
}
