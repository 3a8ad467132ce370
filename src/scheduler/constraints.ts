/**
 * Placement constraints: `ATTRIBUTE == VALUE` or `ATTRIBUTE != VALUE`, as
 * written in an app's `deploy.placement.constraints` (Swarm's syntax).
 * Pure: no Node API.
 *
 * Attributes:
 * - `node.id`, `node.hostname`: the node's id. Hivemind names a node by its
 *   id (which defaults to the host's name), so both read the same field.
 * - `node.role`: the node's Raft role as the leader recorded it
 *   (`voter`, `learner`, `none`), or Swarm's words for it: `manager` is a
 *   voter (a node that takes part in Raft's decisions), `worker` any other.
 * - `node.labels.KEY`: the node's label KEY; a node without that label never
 *   equals and always differs.
 */
import type { NodeRecord } from '../state/types.js';

/** A parsed constraint. `text` is its normalized form `attribute op value`, used in messages. */
export interface Constraint {
  attribute: ConstraintAttribute;
  operator: '==' | '!=';
  value: string;
  text: string;
}

/** What a constraint reads from a node. */
export type ConstraintAttribute = { kind: 'id' } | { kind: 'role' } | { kind: 'label'; key: string };

/** Why a constraint could not be parsed. `code` is stable. */
export interface ConstraintError {
  code: 'invalid-constraint';
  message: string;
}

export type ParsedConstraint = { ok: true; constraint: Constraint } | { ok: false; error: ConstraintError };

const form = /^\s*([^\s=!]+)\s*(==|!=)\s*(\S(?:.*\S)?)\s*$/;
const knownAttributes = 'node.id, node.hostname, node.role or node.labels.<key>';

/** Parses one constraint; malformed text gets an error naming the constraint and the expected form. */
export function parseConstraint(text: string): ParsedConstraint {
  const match = form.exec(text);
  if (match === null) {
    return invalid(`constraint ${JSON.stringify(text)} is malformed; write it like "node.labels.zone == a" or "node.hostname != n2"`);
  }
  const [, name = '', operator = '', value = ''] = match;
  const attribute = readAttribute(name);
  if (attribute === undefined) {
    return invalid(`constraint ${JSON.stringify(text)} reads ${JSON.stringify(name)}, which Hivemind does not know; use ${knownAttributes}`);
  }
  const op = operator === '==' ? '==' : '!=';
  if (attribute.kind === 'role' && !ROLE_VALUES.includes(value)) {
    return invalid(`constraint ${JSON.stringify(text)} compares node.role with ${JSON.stringify(value)}; a node's role is ${ROLE_VALUES.join(', ')} (manager: a Raft voter)`);
  }
  return { ok: true, constraint: { attribute, operator: op, value, text: `${name} ${op} ${value}` } };
}

/** Parses every constraint of a list; the first malformed one is the error. */
export function parseConstraints(texts: readonly string[]): { ok: true; constraints: Constraint[] } | { ok: false; error: ConstraintError } {
  const constraints: Constraint[] = [];
  for (const text of texts) {
    const parsed = parseConstraint(text);
    if (!parsed.ok) return parsed;
    constraints.push(parsed.constraint);
  }
  return { ok: true, constraints };
}

/** Whether `node` satisfies `constraint`. */
export function constraintHolds(constraint: Constraint, node: NodeRecord): boolean {
  const equal = constraint.attribute.kind === 'role' && SWARM_ROLES.has(constraint.value) ? (constraint.value === 'manager') === (node.role === 'voter') : attributeValue(constraint.attribute, node) === constraint.value;
  return constraint.operator === '==' ? equal : !equal;
}

/** Swarm's node roles, which `node.role` constraints may name: `manager` (a voter) and `worker` (any other). */
const SWARM_ROLES: ReadonlySet<string> = new Set(['manager', 'worker']);

/** The values a `node.role` constraint may compare with. */
export const ROLE_VALUES: readonly string[] = ['manager', 'worker', 'voter', 'learner', 'none'];

/** The first of `constraints` that `node` breaks, if any. */
export function brokenConstraint(constraints: readonly Constraint[], node: NodeRecord): Constraint | undefined {
  return constraints.find((constraint) => !constraintHolds(constraint, node));
}

function readAttribute(name: string): ConstraintAttribute | undefined {
  if (name === 'node.id' || name === 'node.hostname') return { kind: 'id' };
  if (name === 'node.role') return { kind: 'role' };
  const label = /^node\.labels\.(\S+)$/.exec(name);
  if (label?.[1] !== undefined) return { kind: 'label', key: label[1] };
  return undefined;
}

function attributeValue(attribute: ConstraintAttribute, node: NodeRecord): string | undefined {
  switch (attribute.kind) {
    case 'id':
      return node.id;
    case 'role':
      return node.role;
    case 'label':
      return Object.hasOwn(node.labels, attribute.key) ? node.labels[attribute.key] : undefined;
  }
}

function invalid(message: string): ParsedConstraint {
  return { ok: false, error: { code: 'invalid-constraint', message } };
}
