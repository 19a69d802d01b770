// Messages between the worker and its confined HDF5 reader process. Types only.
import type { Hdf5ContentCode } from './hdf5-columns.ts';
import type { NodePopulation } from './types.ts';

export type ReaderRequest =
  | { op: 'list'; nodesFile: string; shown: string }
  | { op: 'read'; nodesFile: string; shown: string; population: string; maxElements: number };

export type ReaderReply =
  | { ok: true; value: string[] | NodePopulation }
  | { ok: false; code: Hdf5ContentCode; message: string };
