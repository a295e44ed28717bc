// A training problem the user can act on (a diverged loss, a LoRA target the model lacks, an
// unsupported family): the CLI prints its message on one line, without a stack.
export class TrainError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'TrainError';
  }
}
