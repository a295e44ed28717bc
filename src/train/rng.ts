// A small seeded PRNG whose whole state is four 32-bit words, so a checkpoint can store it and
// a resumed run draws the same numbers (sfc32).

export class TrainRng {
  private s: Uint32Array;

  constructor(seed: number | readonly number[]) {
    this.s = new Uint32Array(4);
    if (typeof seed === 'number') {
      this.s.set([0x9e3779b9, 0x243f6a88, 0xb7e15162, seed >>> 0]);
      for (let i = 0; i < 16; i++) this.nextU32();
    } else {
      if (seed.length !== 4) throw new Error(`TrainRng: state must be 4 numbers, got ${seed.length}`);
      this.s.set(seed);
    }
  }

  get state(): number[] {
    return [...this.s];
  }

  restore(state: readonly number[]): void {
    if (state.length !== 4 || state.some((x) => !Number.isInteger(x) || x < 0 || x > 0xffffffff)) throw new Error(`TrainRng: bad state ${JSON.stringify(state)}`);
    this.s.set(state);
  }

  nextU32(): number {
    const s = this.s;
    const t = (((s[0]! + s[1]!) >>> 0) + s[3]!) >>> 0;
    s[3] = (s[3]! + 1) >>> 0;
    s[0] = s[1]! ^ (s[1]! >>> 9);
    s[1] = (s[2]! + (s[2]! << 3)) >>> 0;
    s[2] = ((s[2]! << 21) | (s[2]! >>> 11)) >>> 0;
    s[2] = (s[2]! + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  fillNormal(a: Float32Array, std: number): void {
    for (let i = 0; i < a.length; i++) a[i] = this.normal() * std;
  }
}
