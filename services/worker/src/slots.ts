// A counting semaphore for the consumer loop: it pulls at most as many messages as it has free
// slots, because a message waiting in a local buffer burns its AckWait.

export class Slots {
  private inUse = 0;
  private waiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  readonly size: number;

  constructor(size: number) {
    this.size = size;
  }

  get free(): number {
    return this.size - this.inUse;
  }

  get busy(): number {
    return this.inUse;
  }

  acquire(): void {
    this.inUse++;
  }

  release(): void {
    this.inUse--;
    for (const w of this.waiters.splice(0)) w();
    if (this.inUse === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Resolves when at least one slot is free (at once if one is). */
  waitForFree(): Promise<void> {
    if (this.free > 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  waitIdle(): Promise<void> {
    if (this.inUse === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
