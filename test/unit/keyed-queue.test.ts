import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyedQueue } from '../../src/lib/keyed-queue.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('keyed queue: one task at a time per key, in order; keys side by side; failures do not block', async () => {
  const q = new KeyedQueue(1);
  const log: string[] = [];
  let runningA = 0;
  let maxRunningA = 0;
  const taskA = (name: string, fail = false) => q.run('a', async () => {
    runningA++;
    maxRunningA = Math.max(maxRunningA, runningA);
    log.push(`start ${name}`);
    await tick(5);
    log.push(`end ${name}`);
    runningA--;
    if (fail) throw new Error(`${name} failed`);
    return name;
  });
  let bDoneWhileA1Running = false;
  const results = await Promise.allSettled([
    taskA('a1'),
    taskA('a2', true),
    q.run('b', async () => {
      bDoneWhileA1Running = runningA === 1;
      return 'b1';
    }),
    taskA('a3'),
  ]);
  assert.deepEqual(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)), ['a1', 'a2 failed', 'b1', 'a3']);
  assert.equal(maxRunningA, 1, 'never two tasks of one key at once');
  assert.deepEqual(log, ['start a1', 'end a1', 'start a2', 'end a2', 'start a3', 'end a3'], 'in the order given, after a failure too');
  assert.equal(bDoneWhileA1Running, true, 'another key does not wait');
  await tick(0);
  assert.equal(q.size, 0, 'nothing kept once every task settled');
});

test('keyed queue: with a limit of 2, two tasks of a key run at once and the third waits for one of them', async () => {
  const q = new KeyedQueue(2);
  let running = 0;
  let max = 0;
  const order: number[] = [];
  const task = (n: number) => q.run('k', async () => {
    running++;
    max = Math.max(max, running);
    order.push(n);
    await tick(5);
    running--;
    return n;
  });
  assert.deepEqual(await Promise.all([1, 2, 3, 4, 5].map(task)), [1, 2, 3, 4, 5]);
  assert.equal(max, 2);
  assert.deepEqual(order, [1, 2, 3, 4, 5], 'started in the order given');
  assert.equal(q.size, 0);
  assert.throws(() => new KeyedQueue(0));
});
