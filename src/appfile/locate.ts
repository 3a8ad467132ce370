/**
 * Finds a field of the parsed data back in the YAML document: its line and
 * column for messages, and the source text of numbers. Paths that run
 * through a merge key (`<<: *base`) stop at the nearest field that is
 * written in place. Pure (works on the `yaml` package's document).
 */
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter } from 'yaml';
import type { FieldPath, Locate } from './problems.js';

interface Found {
  /** The node of the value at the deepest segment found. */
  node: unknown;
  /** The key's node, when the deepest segment is a mapping key. */
  key: unknown;
  /** Whether every segment was found. */
  exact: boolean;
  /** How many segments were found, from the outermost. */
  depth: number;
}

function hasRange(node: unknown): node is { range: [number, number, number] } {
  return typeof node === 'object' && node !== null && Array.isArray((node as { range?: unknown }).range);
}

function find(document: Document, path: FieldPath): Found {
  let node: unknown = document.contents;
  let key: unknown;
  let depth = 0;
  for (const segment of path) {
    if (isAlias(node)) node = node.resolve(document);
    let next: { node: unknown; key: unknown } | undefined;
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment));
      if (pair !== undefined) next = { node: pair.value, key: pair.key };
    } else if (isSeq(node) && typeof segment === 'number') {
      if (segment < node.items.length) next = { node: node.items[segment], key: undefined };
    }
    if (next === undefined) return { node: key ?? node, key: undefined, exact: false, depth };
    ({ node, key } = next);
    depth++;
  }
  return { node, key, exact: true, depth };
}

/** Line and column (1-based) of the field at a path: its key when it has one, else its value. */
export function locator(document: Document, lineCounter: LineCounter): Locate {
  return (path) => {
    const found = find(document, path);
    const target = found.key ?? found.node;
    if (!hasRange(target)) return undefined;
    const { line, col } = lineCounter.linePos(target.range[0]);
    return { line, column: col };
  };
}

/** The source text of the number at a path, as written (`1.10`), when it is written in place. */
export function numberSourceFinder(document: Document): (path: FieldPath) => string | undefined {
  return (path) => {
    const found = find(document, path);
    if (!found.exact || !isScalar(found.node) || typeof found.node.value !== 'number') return undefined;
    return found.node.source;
  };
}

/** One parsed file of several merged (`-f a.yml -f b.yml`). */
export interface LocatedDocument {
  name: string;
  document: Document;
  lineCounter: LineCounter;
}

/**
 * Locates a field in the last of `documents` that writes it (a later file
 * overrides an earlier one), naming that file; a field no file writes in
 * full (a list entry named by its key, a field from a merge key) is placed
 * where the deepest part of its path is written, in the first file that
 * goes that deep (an override that only names the service is not where
 * the service's other fields are).
 */
export function documentsLocator(documents: readonly LocatedDocument[]): Locate {
  const single = documents.length === 1;
  return (path) => {
    let fallback: { line: number; column: number; file?: string; depth: number } | undefined;
    for (const { name, document, lineCounter } of [...documents].reverse()) {
      const found = find(document, path);
      const target = found.key ?? found.node;
      if (!hasRange(target)) continue;
      const { line, col } = lineCounter.linePos(target.range[0]);
      const place = single ? { line, column: col } : { line, column: col, file: name };
      if (found.exact) return place;
      // Walking from the last file back: an equal depth in an earlier file takes the place.
      if (fallback === undefined || found.depth >= fallback.depth) fallback = { ...place, depth: found.depth };
    }
    if (fallback === undefined) return undefined;
    const { depth: _depth, ...place } = fallback;
    return place;
  };
}

/** `numberSourceFinder` over several merged files: the last that writes the number in place. */
export function documentsNumberSource(documents: readonly LocatedDocument[]): (path: FieldPath) => string | undefined {
  const finders = documents.map(({ document }) => numberSourceFinder(document)).reverse();
  return (path) => {
    for (const finder of finders) {
      const source = finder(path);
      if (source !== undefined) return source;
    }
    return undefined;
  };
}
