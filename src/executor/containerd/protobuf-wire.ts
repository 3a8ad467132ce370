/**
 * Decoding of the two task events Hivemind reads from containerd's event
 * stream (`containerd.events.TaskExit`, `containerd.events.TaskOOM`, see
 * proto/containerd/task-events.proto). An Envelope carries them as
 * `google.protobuf.Any` bytes, which proto-loader leaves encoded; these few
 * fields are read straight off the protobuf wire format.
 */

/** A decoded TaskExit. `id` is the process id: the container id for the main process, the exec id otherwise. */
export interface TaskExitEvent {
  containerId: string;
  id: string;
  pid: number;
  exitStatus: number;
  exitedAtMs?: number;
}

type Field = { number: number; varint?: number; bytes?: Uint8Array };

/** Splits a message into its fields; throws on malformed input. */
function readFields(buffer: Uint8Array): Field[] {
  const fields: Field[] = [];
  let position = 0;
  const readVarint = (): number => {
    let result = 0;
    let multiplier = 1;
    for (let count = 0; count < 10; count += 1) {
      if (position >= buffer.length) throw new Error('truncated varint');
      const byte = buffer[position++]!;
      result += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) return result;
      multiplier *= 128;
    }
    throw new Error('varint too long');
  };
  while (position < buffer.length) {
    const key = readVarint();
    const number = Math.floor(key / 8);
    const wireType = key & 7;
    if (wireType === 0) fields.push({ number, varint: readVarint() });
    else if (wireType === 2) {
      const length = readVarint();
      if (position + length > buffer.length) throw new Error('truncated field');
      fields.push({ number, bytes: buffer.subarray(position, position + length) });
      position += length;
    } else if (wireType === 1) position += 8;
    else if (wireType === 5) position += 4;
    else throw new Error(`unsupported wire type ${wireType}`);
  }
  return fields;
}

const text = new TextDecoder();

function stringField(fields: Field[], number: number): string {
  const field = fields.find((candidate) => candidate.number === number && candidate.bytes !== undefined);
  return field?.bytes ? text.decode(field.bytes) : '';
}

function varintField(fields: Field[], number: number): number {
  return fields.find((candidate) => candidate.number === number && candidate.varint !== undefined)?.varint ?? 0;
}

/** Decodes a `containerd.events.TaskExit`. */
export function decodeTaskExit(bytes: Uint8Array): TaskExitEvent {
  const fields = readFields(bytes);
  const exit: TaskExitEvent = {
    containerId: stringField(fields, 1),
    id: stringField(fields, 2),
    pid: varintField(fields, 3),
    exitStatus: varintField(fields, 4),
  };
  const exitedAt = fields.find((field) => field.number === 5 && field.bytes !== undefined);
  if (exitedAt?.bytes) {
    const timestamp = readFields(exitedAt.bytes);
    const seconds = varintField(timestamp, 1);
    if (seconds > 0) exit.exitedAtMs = seconds * 1000 + Math.floor(varintField(timestamp, 2) / 1e6);
  }
  return exit;
}

/** Decodes a `containerd.events.TaskOOM`: the container id. */
export function decodeTaskOom(bytes: Uint8Array): { containerId: string } {
  return { containerId: stringField(readFields(bytes), 1) };
}
