#!/usr/bin/env node
// Entry point for `npx slipstream`: runs the TypeScript CLI through tsx (no build step).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
