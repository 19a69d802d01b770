// The bench's verdicts and its printed table: ratios of product to raw figures measured in the
// same run, goals checked against them, and a fixed-width text table (metric, product, raw,
// ratio, goal, met?).

export interface Goal {
  /** `max`: the value must be ≤ limit; `min`: ≥ limit. */
  kind: 'max' | 'min';
  limit: number;
  /** What the limit applies to: the ratio product/raw, or the product figure itself. */
  on: 'ratio' | 'value';
}

export interface Row {
  metric: string;
  product: number | string | null;
  raw?: number | string | null;
  unit?: string;
  goal?: Goal;
}

export interface EvaluatedRow extends Row {
  ratio: number | null;
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
  return goal.on === 'ratio' ? `${op} ${goal.limit}× raw` : `${op} ${goal.limit}${unit ? ` ${unit}` : ''}`;
}

export function evaluate(row: Row): EvaluatedRow {
  const r =
    typeof row.product === 'number' && typeof row.raw === 'number' ? ratio(row.product, row.raw) : null;
  let met: boolean | null = null;
  if (row.goal) {
    const value = row.goal.on === 'ratio' ? r : typeof row.product === 'number' ? row.product : null;
    met = meets(row.goal, value);
  }
  return { ...row, ratio: r, met, goalText: goalText(row.goal, row.unit) };
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
  const header = ['metric', 'product', 'raw', 'ratio', 'goal', 'met?'];
  const body = rows.map((r) => [
    r.metric,
    cell(r.product, r.unit),
    cell(r.raw, r.unit),
    r.ratio === null ? '' : `${r.ratio.toFixed(2)}×`,
    r.goalText,
    r.met === null ? (r.goal ? 'n/a' : '') : r.met ? 'yes' : 'NO',
  ]);
  const all = [header, ...body];
  const widths = header.map((_, i) => Math.max(...all.map((line) => [...(line[i] ?? '')].length)));
  const fmt = (line: string[]) =>
    line
      .map((c, i) => {
        const pad = ' '.repeat((widths[i] ?? 0) - [...c].length);
        return i === 0 || i === 4 ? c + pad : pad + c;
      })
      .join('  ')
      .trimEnd();
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(fmt)].join('\n');
}
