// One wrapper around TypeBox's compiler: compile once, check on the hot path, and turn failures
// into ValidationError details that name the offending field.
import type { Static, TSchema } from '@sinclair/typebox';
import { FormatRegistry } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ValidationError } from './errors.ts';

// TypeBox knows no string formats by itself; the contracts use these.
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set('date-time', (v) => ISO_DATE_TIME.test(v) && !Number.isNaN(Date.parse(v)));
}

export interface Validator<T extends TSchema> {
  check(value: unknown): value is Static<T>;
  /** Returns the value typed, or throws ValidationError listing every problem. */
  parse(value: unknown, what?: string): Static<T>;
  errors(value: unknown): { path: string; message: string }[];
}

const MAX_DETAILS = 20;

export function createValidator<T extends TSchema>(schema: T): Validator<T> {
  const compiled = TypeCompiler.Compile(schema);
  const errors = (value: unknown) => {
    const out: { path: string; message: string }[] = [];
    for (const e of compiled.Errors(value)) {
      // Unions report one error per branch; keep the first per path so the answer stays readable.
      if (out.some((o) => o.path === e.path)) continue;
      out.push({ path: e.path === '' ? '/' : e.path, message: e.message });
      if (out.length >= MAX_DETAILS) break;
    }
    return out;
  };
  return {
    check: (value): value is Static<T> => compiled.Check(value),
    errors,
    parse(value, what = 'value') {
      if (compiled.Check(value)) return value;
      const details = errors(value);
      const summary = details.map((d) => `${d.path}: ${d.message}`).join('; ');
      throw new ValidationError(`invalid ${what}: ${summary}`, details);
    },
  };
}
