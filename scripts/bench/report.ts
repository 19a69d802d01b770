// The bench's verdicts and its printed table: ratios of product to raw (and to BullMQ) figures
// measured in the same run, goals checked against them, and a fixed-width text table (metric,
// product, raw, ratio, [BullMQ, ÷ BullMQ,] goal, met?). The BullMQ columns appear only when some
// row has a BullMQ figure.

export interface Goal {
  /** `max`: the value must be ≤ limit; `min`: ≥ limit. */
  kind: 'max' | 'min';
  limit: number;
  /** What the limit applies to: the ratio product/raw, product/BullMQ, or the product figure itself. */
  on: 'ratio' | 'bullmq' | 'value';
}

export interface Row {
  metric: string;
  product: number | string | null;
  raw?: number | string | null;
  /** The same figure for the BullMQ peer, measured in the same run. */
  bullmq?: number | string | null;
  unit?: string;
  goal?: Goal;
}

export interface EvaluatedRow extends Row {
  ratio: number | null;
  /** product / BullMQ. */
  vsBullmq: number | null;
  met: boolean | null;
  goalText: string;
}

export function ratio(product: number, raw: number): number | null {
  if (!Number.isFinite(product) || !Number.isFinite(raw) || raw <= 0) return null;
  return Math.round((product / raw) * 100) / 100;
}

export function meets(goal: Goal, value: number | null): boolean | null {
  if (value === null || !Number.isFinite(value)) return null;
  return goal.kind === 'max' ? value <= goal.limit : value >= goal.limit;
}

export function goalText(goal: Goal | undefined, unit = ''): string {
  if (!goal) return '';
  const op = goal.kind === 'max' ? '≤' : '≥';
  if (goal.on === 'ratio') return `${op} ${goal.limit}× raw`;
  if (goal.on === 'bullmq') return `${op} ${goal.limit}× BullMQ`;
  return `${op} ${goal.limit}${unit ? ` ${unit}` : ''}`;
}

export function evaluate(row: Row): EvaluatedRow {
  const over = (other: Row['raw']) =>
    typeof row.product === 'number' && typeof other === 'number' ? ratio(row.product, other) : null;
  const r = over(row.raw);
  const vsBullmq = over(row.bullmq);
  let met: boolean | null = null;
  if (row.goal) {
    const { on } = row.goal;
    const value =
      on === 'ratio' ? r : on === 'bullmq' ? vsBullmq : typeof row.product === 'number' ? row.product : null;
    met = meets(row.goal, value);
  }
  return { ...row, ratio: r, vsBullmq, met, goalText: goalText(row.goal, row.unit) };
}

function cell(v: number | string | null | undefined, unit = ''): string {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'string') return v;
  if (Number.isInteger(v)) return `${v}${unit ? ` ${unit}` : ''}`;
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : Math.abs(v) >= 1 ? 2 : 3;
  return `${v.toFixed(digits)}${unit ? ` ${unit}` : ''}`;
}

/** A plain-text table; columns sized to their widest cell. */
export function formatTable(rows: EvaluatedRow[]): string {
  const withBullmq = rows.some((r) => r.bullmq !== undefined && r.bullmq !== null);
  const times = (x: number | null) => (x === null ? '' : `${x.toFixed(2)}×`);
  const header = [
    'metric',
    'product',
    'raw',
    'ratio',
    ...(withBullmq ? ['BullMQ', '÷ BullMQ'] : []),
    'goal',
    'met?',
  ];
  const goalColumn = header.indexOf('goal');
  const body = rows.map((r) => [
    r.metric,
    cell(r.product, r.unit),
    cell(r.raw, r.unit),
    times(r.ratio),
    ...(withBullmq ? [cell(r.bullmq, r.unit), times(r.vsBullmq)] : []),
    r.goalText,
    r.met === null ? (r.goal ? 'n/a' : '') : r.met ? 'yes' : 'NO',
  ]);
  const all = [header, ...body];
  const widths = header.map((_, i) => Math.max(...all.map((line) => [...(line[i] ?? '')].length)));
  const fmt = (line: string[]) =>
    line
      .map((c, i) => {
        const pad = ' '.repeat((widths[i] ?? 0) - [...c].length);
        return i === 0 || i === goalColumn ? c + pad : pad + c;
      })
      .join('  ')
      .trimEnd();
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(fmt)].join('\n');
}
