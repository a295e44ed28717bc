// Errors about files on disk (checkpoints, tokenizers, configs, downloads). The message always
// names the file and the problem, so the CLI can print it as is and exit non-zero.

export class FormatError extends Error {
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'FormatError';
    this.file = file;
  }
}
