// The paged KV cache's bookkeeping (the KvPool tensors hold the data): which blocks are free,
// which belong to which sequence, and which full blocks can be shared through the prefix cache.
//
// A full block is identified by a hash chained over (parent block's hash, the block's token ids),
// so equal hashes mean equal prefixes up to and including the block, as in vLLM and nano-vllm.
// Blocks are reference-counted: a block in several tables (a shared system prompt, the n choices
// of one request) is freed when the last one lets go. A freed block that has a hash keeps its
// contents and stays findable in an LRU free list until it is needed for something else.
//
// The hash only finds candidates: a hit is checked against the block's stored token ids and its
// parent block's identity (id and epoch), so a hash collision costs a cache miss, never a wrong
// answer.

/** A sequence's blocks, in position order, and the chained hashes of its full blocks so far. */
export class BlockTable {
  readonly blocks: number[] = [];
  /** hashes[i]: the chain hash of full block i (known for the blocks whose tokens are all computed). */
  readonly hashes: number[] = [];
}

const NONE = -1;

// Two independent 32-bit multiply-xorshift lanes give ~53 usable bits (a JS number keeps them exact).
const M1 = 0x9e3779b1;
const M2 = 0x85ebca77;
const M3 = 0xc2b2ae3d;

function mix(h: number, x: number, m: number): number {
  h = Math.imul(h ^ x, m);
  return (h ^ (h >>> 15)) >>> 0;
}

/** Hash of one block's tokens chained onto its parent's hash (0 for the first block). */
export function blockHash(parent: number, tokens: ArrayLike<number>, start: number, n: number): number {
  let a = mix(0x811c9dc5, parent >>> 0, M1);
  let b = mix(0x01000193, Math.floor(parent / 2 ** 32), M2);
  for (let i = start; i < start + n; i++) {
    const t = tokens[i]! | 0;
    a = mix(a, t, M1);
    b = mix(b, t, M3);
  }
  a = mix(a, n, M2);
  b = mix(b, a, M1);
  return (a >>> 0) * 2 ** 21 + (b & 0x1fffff);
}

export class BlockManager {
  readonly totalBlocks: number;
  readonly blockSize: number;
  readonly prefixCaching: boolean;
  private readonly ref: Int32Array;
  // Prefix-cache metadata of each block (hash NONE: not in the cache).
  private readonly hash: number[];
  private readonly tokens: (Int32Array | null)[];
  private readonly parent: Int32Array;
  private readonly parentEpoch: Int32Array;
  /** Bumped whenever a block's identity changes (registered or evicted), so stale parent links never match. */
  private readonly epoch: Int32Array;
  private readonly cached = new Map<number, number>(); // hash -> block id
  // Free list (blocks with ref 0) as a doubly linked list: allocation takes the head (least
  // recently used), freed cached blocks go to the tail, freed blank blocks to the head.
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = NONE;
  private tail = NONE;
  private nFree = 0;

  constructor(totalBlocks: number, blockSize: number, prefixCaching = true) {
    if (!Number.isInteger(totalBlocks) || totalBlocks <= 0) throw new Error(`BlockManager: totalBlocks must be a positive integer, got ${totalBlocks}`);
    if (!Number.isInteger(blockSize) || blockSize <= 0) throw new Error(`BlockManager: blockSize must be a positive integer, got ${blockSize}`);
    this.totalBlocks = totalBlocks;
    this.blockSize = blockSize;
    this.prefixCaching = prefixCaching;
    this.ref = new Int32Array(totalBlocks);
    this.hash = new Array<number>(totalBlocks).fill(NONE);
    this.tokens = new Array<Int32Array | null>(totalBlocks).fill(null);
    this.parent = new Int32Array(totalBlocks).fill(NONE);
    this.parentEpoch = new Int32Array(totalBlocks);
    this.epoch = new Int32Array(totalBlocks);
    this.prev = new Int32Array(totalBlocks).fill(NONE);
    this.next = new Int32Array(totalBlocks).fill(NONE);
    for (let b = 0; b < totalBlocks; b++) this.pushTail(b);
  }

  /** Blocks held by at least one sequence (cached free blocks do not count). */
  get usedBlocks(): number {
    return this.totalBlocks - this.nFree;
  }

  /** Blocks that can be allocated (blank or evictable cached ones). */
  get freeBlocks(): number {
    return this.nFree;
  }

  /** Full blocks currently findable in the prefix cache (used or free). */
  get cachedBlocks(): number {
    return this.cached.size;
  }

  refCount(block: number): number {
    return this.ref[block]!;
  }

  /**
   * The cached blocks that hold the first blocks of `tokens` (at most maxBlocks), with their chain
   * hashes. No side effects: acquire() takes them.
   */
  match(tokens: ArrayLike<number>, maxBlocks: number): { blocks: number[]; hashes: number[] } {
    const blocks: number[] = [];
    const hashes: number[] = [];
    if (!this.prefixCaching) return { blocks, hashes };
    const bs = this.blockSize;
    let h = 0;
    let parent = NONE;
    let parentEpoch = 0;
    for (let i = 0; i < maxBlocks && (i + 1) * bs <= tokens.length; i++) {
      h = blockHash(h, tokens, i * bs, bs);
      const b = this.cached.get(h);
      if (b === undefined || this.parent[b] !== parent || (parent !== NONE && this.parentEpoch[b] !== parentEpoch)) break;
      const stored = this.tokens[b]!;
      let same = true;
      for (let j = 0; j < bs && same; j++) same = stored[j] === tokens[i * bs + j];
      if (!same) break;
      blocks.push(b);
      hashes.push(h);
      parent = b;
      parentEpoch = this.epoch[b]!;
    }
    return { blocks, hashes };
  }

  /** Blocks a table would take from the free list to acquire these cached blocks (those not in use). */
  freeNeededFor(blocks: readonly number[]): number {
    let n = 0;
    for (const b of blocks) if (this.ref[b] === 0) n++;
    return n;
  }

  /** Appends matched cached blocks (from match()) to an empty table, taking a reference on each. */
  acquire(table: BlockTable, m: { blocks: number[]; hashes: number[] }): void {
    if (table.blocks.length !== 0) throw new Error('BlockManager.acquire: the table must be empty');
    for (let i = 0; i < m.blocks.length; i++) {
      const b = m.blocks[i]!;
      if (this.ref[b] === 0) this.unlink(b);
      this.ref[b]!++;
      table.blocks.push(b);
      table.hashes.push(m.hashes[i]!);
    }
  }

  /** Blocks to add for the table to cover `tokens` positions. */
  blocksNeeded(table: BlockTable, tokens: number): number {
    return Math.max(0, Math.ceil(tokens / this.blockSize) - table.blocks.length);
  }

  /** Grows the table to cover `tokens` positions; false (and nothing allocated) when blocks run out. */
  grow(table: BlockTable, tokens: number): boolean {
    const need = this.blocksNeeded(table, tokens);
    if (need > this.nFree) return false;
    for (let i = 0; i < need; i++) table.blocks.push(this.take());
    return true;
  }

  /**
   * Registers the table's blocks that became full of computed tokens (numComputed of `tokens`) in
   * the prefix cache. A block whose content is already cached in another block stays private.
   */
  commit(table: BlockTable, tokens: ArrayLike<number>, numComputed: number): void {
    const bs = this.blockSize;
    for (let i = table.hashes.length; (i + 1) * bs <= numComputed && i < table.blocks.length; i++) {
      const h = blockHash(i === 0 ? 0 : table.hashes[i - 1]!, tokens, i * bs, bs);
      table.hashes.push(h);
      if (!this.prefixCaching || this.cached.has(h)) continue;
      const b = table.blocks[i]!;
      if (this.hash[b] !== NONE) continue; // already registered (shared)
      const p = i === 0 ? NONE : table.blocks[i - 1]!;
      this.hash[b] = h;
      this.tokens[b] = Int32Array.from({ length: bs }, (_, j) => tokens[i * bs + j]!);
      this.parent[b] = p;
      this.parentEpoch[b] = p === NONE ? 0 : this.epoch[p]!;
      this.epoch[b]!++;
      this.cached.set(h, b);
    }
  }

  /** Drops the table's references (last block first, so a prefix outlives its continuations in the LRU). */
  free(table: BlockTable): void {
    for (let i = table.blocks.length - 1; i >= 0; i--) {
      const b = table.blocks[i]!;
      if (this.ref[b]! <= 0) throw new Error(`BlockManager.free: block ${b} is not in use`);
      if (--this.ref[b]! === 0) {
        if (this.hash[b] !== NONE) this.pushTail(b);
        else this.pushHead(b);
      }
    }
    table.blocks.length = 0;
    table.hashes.length = 0;
  }

  /** Takes the least recently used free block, evicting its cache entry. */
  private take(): number {
    const b = this.head;
    if (b === NONE) throw new Error('BlockManager: out of blocks');
    this.unlink(b);
    if (this.hash[b] !== NONE) {
      if (this.cached.get(this.hash[b]!) === b) this.cached.delete(this.hash[b]!);
      this.hash[b] = NONE;
      this.tokens[b] = null;
      this.parent[b] = NONE;
      this.epoch[b]!++;
    }
    this.ref[b] = 1;
    return b;
  }

  private unlink(b: number): void {
    const p = this.prev[b]!, n = this.next[b]!;
    if (p === NONE) this.head = n;
    else this.next[p] = n;
    if (n === NONE) this.tail = p;
    else this.prev[n] = p;
    this.prev[b] = this.next[b] = NONE;
    this.nFree--;
  }

  private pushTail(b: number): void {
    this.prev[b] = this.tail;
    this.next[b] = NONE;
    if (this.tail === NONE) this.head = b;
    else this.next[this.tail] = b;
    this.tail = b;
    this.nFree++;
  }

  private pushHead(b: number): void {
    this.next[b] = this.head;
    this.prev[b] = NONE;
    if (this.head === NONE) this.tail = b;
    else this.prev[this.head] = b;
    this.head = b;
    this.nFree++;
  }
}
