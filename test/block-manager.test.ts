import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BlockManager, BlockTable, blockHash } from '../src/engine/block-manager.ts';
import { Scheduler, type SchedSeq } from '../src/engine/scheduler.ts';

const seqOf = (tokens: number[]): SchedSeq => ({ tokens, promptLen: tokens.length, numComputed: 0, table: new BlockTable(), prefilled: false, cachedTokens: -1, status: 'waiting' });

describe('BlockManager', () => {
  it('allocates, counts and frees blocks', () => {
    const bm = new BlockManager(8, 4);
    const t = new BlockTable();
    assert.ok(bm.grow(t, 9)); // 3 blocks
    assert.equal(t.blocks.length, 3);
    assert.equal(bm.usedBlocks, 3);
    assert.ok(bm.grow(t, 12)); // still 3
    assert.equal(bm.usedBlocks, 3);
    const u = new BlockTable();
    assert.equal(bm.grow(u, 24), false, '6 blocks do not fit in the 5 left');
    assert.equal(u.blocks.length, 0, 'a failed grow allocates nothing');
    assert.equal(bm.usedBlocks, 3);
    bm.free(t);
    assert.equal(bm.usedBlocks, 0);
    assert.equal(bm.freeBlocks, 8);
    assert.throws(() => new BlockManager(0, 4), /positive integer/);
  });

  it('shares full prompt blocks through the hash chain, with reference counts', () => {
    const bm = new BlockManager(8, 4);
    const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const a = new BlockTable();
    bm.grow(a, prompt.length);
    bm.commit(a, prompt, prompt.length); // two full blocks enter the cache, the partial third does not
    assert.equal(bm.cachedBlocks, 2);
    const m = bm.match([1, 2, 3, 4, 5, 6, 7, 8, 99], 2);
    assert.deepEqual(m.blocks, a.blocks.slice(0, 2));
    assert.equal(m.hashes[1], blockHash(blockHash(0, prompt, 0, 4), prompt, 4, 4));
    const b = new BlockTable();
    bm.acquire(b, m);
    assert.equal(bm.refCount(a.blocks[0]!), 2);
    assert.equal(bm.usedBlocks, 3, 'shared blocks are counted once');
    // A different first block breaks the chain even if the second block's tokens are equal.
    assert.equal(bm.match([0, 2, 3, 4, 5, 6, 7, 8], 2).blocks.length, 0);
    assert.equal(bm.match([1, 2, 3, 4, 0, 6, 7, 8], 2).blocks.length, 1);
    bm.free(a);
    assert.equal(bm.usedBlocks, 2);
    bm.free(b);
    assert.equal(bm.usedBlocks, 0);
    // Freed cached blocks stay findable until their memory is needed.
    assert.equal(bm.match(prompt, 2).blocks.length, 2);
    const c = new BlockTable();
    assert.ok(bm.grow(c, 8 * 4)); // every block: the cached ones are evicted
    assert.equal(bm.cachedBlocks, 0);
    bm.free(c);
    assert.equal(bm.match(prompt, 2).blocks.length, 0);
  });

  it('evicts the least recently freed cached block first, blank blocks before cached ones', () => {
    const bm = new BlockManager(4, 2);
    const a = new BlockTable();
    bm.grow(a, 4);
    bm.commit(a, [1, 2, 3, 4], 4);
    bm.free(a); // both cached, free
    const b = new BlockTable();
    bm.grow(b, 4); // takes the two blank blocks first
    assert.equal(bm.match([1, 2, 3, 4], 2).blocks.length, 2);
    const c = new BlockTable();
    bm.grow(c, 2); // now one cached block must go: the continuation, not the prefix
    assert.equal(bm.match([1, 2, 3, 4], 2).blocks.length, 1);
  });

  it('a hash collision is a miss, never a wrong hit', () => {
    const bm = new BlockManager(4, 2);
    const a = new BlockTable();
    bm.grow(a, 2);
    bm.commit(a, [5, 6], 2);
    // Forge a collision: point another content's hash at the cached block.
    const cached = (bm as unknown as { cached: Map<number, number> }).cached;
    cached.set(blockHash(0, [7, 8], 0, 2), a.blocks[0]!);
    assert.equal(bm.match([7, 8], 1).blocks.length, 0);
    assert.equal(bm.match([5, 6], 1).blocks.length, 1);
  });
});

describe('Scheduler', () => {
  it('reserves decode tokens before prompt chunks and respects the token budget', () => {
    const bm = new BlockManager(64, 4);
    const s = new Scheduler(bm, { maxBatchTokens: 8, maxSeqs: 4 });
    const a = seqOf(Array.from({ length: 5 }, (_, i) => i + 1));
    const b = seqOf(Array.from({ length: 20 }, (_, i) => 100 + i));
    s.add(a);
    s.add(b);
    let step = s.schedule();
    assert.deepEqual(step.map((x) => [x.seq === a ? 'a' : 'b', x.n, x.sample]), [['a', 5, true], ['b', 3, false]]);
    s.update(step);
    a.tokens.push(42); // a sampled a token: it now decodes
    step = s.schedule();
    assert.deepEqual(step.map((x) => [x.seq === a ? 'a' : 'b', x.n]), [['a', 1], ['b', 7]]);
    s.update(step);
    assert.equal(a.numComputed, 6);
    assert.equal(b.numComputed, 10);
  });

  it('preempts the newest running sequence when blocks run out, and recomputes it later', () => {
    const bm = new BlockManager(4, 2); // 8 token slots
    const s = new Scheduler(bm, { maxBatchTokens: 16, maxSeqs: 4 });
    const a = seqOf([1, 2, 3]);
    const b = seqOf([4, 5, 6]);
    s.add(a);
    s.add(b);
    s.update(s.schedule()); // 2 blocks each: the pool is full
    assert.equal(bm.freeBlocks, 0);
    a.tokens.push(7, 8); // pretend a sampled; its next token needs a third block
    a.numComputed = 4;
    b.tokens.push(9);
    const step = s.schedule();
    assert.equal(s.preemptions, 1);
    assert.deepEqual(step.map((x) => x.seq), [a]);
    assert.equal(b.status, 'waiting');
    assert.equal(b.numComputed, 0);
    assert.equal(s.waiting[0], b);
  });
});
