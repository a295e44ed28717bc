// Bad input raises errors naming the op and the shapes, on every backend.

import { refBackend } from '../src/tensor/ref.ts';
import { errorSuite } from './helpers/error-suite.ts';

errorSuite(refBackend);
