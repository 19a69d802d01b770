// Collects stdout or stderr lines up to a byte cap. Past the cap, lines are counted and dropped, and
// one marker line says how much was lost, so a flood cannot grow a result without bound.

export class OutputCapture {
  readonly lines: string[] = [];
  private bytes = 0;
  private droppedBytes = 0;
  private readonly maxBytes: number;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  push(line: string): void {
    const size = Buffer.byteLength(line, 'utf8') + 1;
    if (this.droppedBytes === 0 && this.bytes + size <= this.maxBytes) {
      this.lines.push(line);
      this.bytes += size;
      return;
    }
    this.droppedBytes += size;
  }

  get truncated(): boolean {
    return this.droppedBytes > 0;
  }

  /** The lines, with the truncation marker last when anything was dropped. */
  result(): string[] {
    if (!this.truncated) return this.lines;
    return [
      ...this.lines,
      `[output truncated: ${this.droppedBytes} bytes over the ${this.maxBytes}-byte limit dropped]`,
    ];
  }
}
