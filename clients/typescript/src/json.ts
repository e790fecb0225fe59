// Checks that what goes into a google.protobuf.Struct / Value field is JSON.
//
// protobuf-es converts whatever it is given, and what is not JSON comes out changed
// without a word: undefined, functions, symbols and bigints become null, a Date or a Map
// becomes {}. The Go and Python clients refuse such values; so does this one, before
// any call, with an InvalidArgumentError naming where the value is.

import { InvalidArgumentError } from "./errors.js";

/**
 * Throws an InvalidArgumentError unless `value` is JSON: null, a boolean, a finite number,
 * a string, an array of JSON values without holes, or a plain object (made by a literal,
 * `JSON.parse`, `Object.create(null)`...) of JSON values.
 */
export function checkJson(value: unknown, path: string): void {
  check(value, path, []);
}

/** Like `checkJson`, and the value must be a plain object (a Struct). */
export function checkJsonObject(value: unknown, path: string): void {
  if (!isPlainObject(value)) {
    throw new InvalidArgumentError(`${path}: expected a JSON object, got ${describe(value)}`);
  }
  check(value, path, []);
}

function check(value: unknown, path: string, ancestors: object[]): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) {
        throw new InvalidArgumentError(`${path}: ${value} is not JSON (NaN and infinities are not allowed)`);
      }
      return;
    case "object":
      break;
    default:
      throw notJson(value, path);
  }
  if (value === null) {
    return;
  }
  if (ancestors.includes(value)) {
    throw new InvalidArgumentError(`${path}: a cycle (the value contains itself) is not JSON`);
  }
  ancestors.push(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      check(value[i], `${path}[${i}]`, ancestors);
    }
  } else if (isPlainObject(value)) {
    for (const [key, v] of Object.entries(value)) {
      check(v, `${path}${/^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`}`, ancestors);
    }
  } else {
    throw notJson(value, path);
  }
  ancestors.pop();
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return false;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function notJson(value: unknown, path: string): InvalidArgumentError {
  let hint = "";
  if (value === undefined) {
    hint = path.endsWith("]") ? " (use null)" : " (leave the key out, or use null)";
  } else if (typeof value === "bigint") {
    hint = " (convert it to a number or a string)";
  } else if (value instanceof Date) {
    hint = " (convert it to a string, e.g. with toISOString())";
  }
  return new InvalidArgumentError(`${path}: ${describe(value)} is not JSON${hint}`);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "undefined":
      return "undefined";
    case "bigint":
      return `the bigint ${value}n`;
    case "function":
      return "a function";
    case "symbol":
      return "a symbol";
    case "object": {
      const name = (value as object).constructor?.name;
      return name ? `${/^[aeiou]/i.test(name) ? "an" : "a"} ${name}` : "an object";
    }
    default:
      return `a ${typeof value}`;
  }
}
