import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FailureWindow } from '../../src/lib/failure-window.js';

describe('FailureWindow', () => {
  test('blocks an address at the limit until its minute ends', () => {
    let now = 1_000_000;
    const w = new FailureWindow(3, 100, () => now);
    for (let i = 0; i < 3; i++) {
      assert.equal(w.blockedFor('a'), 0);
      w.record('a');
    }
    assert.equal(w.blockedFor('a'), 60);
    assert.equal(w.blockedFor('b'), 0, 'other addresses are not affected');
    now += 59_001;
    assert.equal(w.blockedFor('a'), 1);
    now += 1_000;
    assert.equal(w.blockedFor('a'), 0, 'a new minute starts afresh');
    w.record('a');
    assert.equal(w.blockedFor('a'), 0);
  });

  test('0 disables it', () => {
    const w = new FailureWindow(0);
    for (let i = 0; i < 1000; i++) w.record('a');
    assert.equal(w.blockedFor('a'), 0);
  });

  test('tracks a bounded number of addresses, dropping ended windows, then the oldest', () => {
    let now = 0;
    const w = new FailureWindow(1, 3, () => now);
    w.record('old');
    now = 61_000;
    for (const a of ['x', 'y']) w.record(a);
    w.record('z'); // full: the ended window of 'old' goes
    for (const a of ['x', 'y', 'z']) assert.equal(w.blockedFor(a), 60);
    w.record('w'); // full again, none ended: the oldest ('x') goes
    assert.equal(w.blockedFor('x'), 0);
    for (const a of ['y', 'z', 'w']) assert.ok(w.blockedFor(a) > 0, a);
  });
});
