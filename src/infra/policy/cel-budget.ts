import type * as CelModule from '@bufbuild/cel';
import type { CelFunc, CelList, CelMap, CelValue } from '@bufbuild/cel';
import type * as Re2Module from '@bufbuild/re2';

/**
 * What one CEL evaluation may cost, in time and in memory.
 *
 * @bufbuild/cel 0.6 has no cost budget, and some of its functions cost far
 * more than what they are given: the strings extension's `replace` rebuilds
 * the whole string for every match (five chained replaces of a 10-character
 * literal: 30 s), `split` and `join` build values much larger than their
 * inputs (a list of n references to one string joins into n copies of it),
 * and `matches` can cost its text's length times the size of its pattern's
 * program. No static bound sees these: n is the goal's data.
 *
 * So every function an expression calls is charged, in units of about a
 * nanosecond of work ({@link COST}), by the size of what it reads and makes;
 * every loop step, and every element a comprehension iterates, is charged
 * too. The functions whose work can outgrow their inputs are replaced here by
 * versions that charge what they are about to do before doing it (and
 * `replace` by one that is linear); the others are charged when they return,
 * which lets one linear call past the budget at most. Past its budget, an
 * evaluation stops at once: the charge throws, and the rule's evaluation is
 * an error (which fails closed). As a backstop for work no charge sees (a
 * map indexed by a number scans its keys), an evaluation also stops after
 * {@link MAX_EVALUATION_MS} of wall-clock time, read every few loop steps
 * and every 32 charges.
 *
 * Evaluation is synchronous, so one meter serves every program.
 */

type CelLib = typeof CelModule;
type Re2Lib = typeof Re2Module;

/** What things cost, in units of about a nanosecond of work (measured on a 2-vCPU VM, Node 24). */
const COST = {
  /** A character of text a function reads. */
  char: 1,
  /** A character of text a function makes (copies and keeps). */
  madeChar: 2,
  /** A function call (the evaluator's dispatch: ~300 ns). */
  call: 300,
  /** A list element or map entry made, or iterated by a comprehension. */
  element: 100,
  /** An element of a list or map compared or walked whole (`==`, `in`, `format`: ~1 µs each). */
  compared: 1000,
  /** A loop step of a comprehension (~1 µs besides the calls in it). */
  step: 1000,
  /** A match `replace` cuts out. */
  match: 100,
  /** A character of a regex's pattern, compiled (~500 ns). */
  patternChar: 300,
  /** An instruction of a regex's program, compiled (~200 ns). */
  regexInstruction: 200,
  /** Per instruction of a regex's program, for each state RE2's DFA builds (~100 ns). */
  regexState: 100,
  /** Per instruction of a regex's program per character of text, in RE2's NFA (~70 ns: `[ab]*a[ab]{999}c` over 200,000 characters takes 14 s). */
  regexStep: 70,
} as const;

/** The wall-clock backstop of one evaluation, in milliseconds: ten times what the default cost budget should take. */
export const MAX_EVALUATION_MS = 1000;

/** Why an evaluation stopped, and at which call (an expression id, for its place in the text). */
export interface Overrun {
  readonly kind: 'cost' | 'steps' | 'time';
  readonly exprId: number | undefined;
}

interface Meter {
  /** Units left; infinite outside an evaluation. */
  left: number;
  stepsLeft: number;
  /** NaN until the clock is first read. */
  deadline: number;
  /** Charges left before the clock is read again. */
  tick: number;
  /** The expression id of the call under way. */
  at: number | undefined;
  overrun: Overrun | undefined;
}

const meter: Meter = { left: Number.POSITIVE_INFINITY, stepsLeft: Number.POSITIVE_INFINITY, deadline: Number.POSITIVE_INFINITY, tick: 0, at: undefined, overrun: undefined };
let budget = 0;
let spent = 0;

/** Starts an evaluation's budget. */
export function startMeter(maxCost: number, maxLoopSteps: number): void {
  budget = maxCost;
  meter.left = maxCost;
  meter.stepsLeft = maxLoopSteps;
  // Set at the first reading of the clock: most evaluations are over before it (a few calls).
  meter.deadline = Number.NaN;
  meter.tick = CHARGES_PER_CLOCK_READ;
  meter.at = undefined;
  meter.overrun = undefined;
}

/** Ends the evaluation under way: whether it went over its budget (then its value, whatever it is, does not count). */
export function stopMeter(): Overrun | undefined {
  const overrun = meter.overrun;
  if (overrun === undefined) spent = budget - meter.left;
  meter.left = Number.POSITIVE_INFINITY;
  meter.stepsLeft = Number.POSITIVE_INFINITY;
  meter.deadline = Number.POSITIVE_INFINITY;
  meter.overrun = undefined;
  return overrun;
}

/** What the last evaluation cost, in units: what it did up to its budget, not the charge it was stopped at. */
export function lastCost(): number {
  return spent;
}

const CHARGES_PER_CLOCK_READ = 32;

class BudgetExceeded extends Error {}

function stop(kind: Overrun['kind']): never {
  // The first overrun is the one to report: once over, every charge stops again, wherever it is.
  if (meter.overrun === undefined) {
    meter.overrun = { kind, exprId: meter.at };
    spent = budget - meter.left;
    meter.left = -1;
  }
  throw new BudgetExceeded(`evaluation stopped (${kind})`);
}

/** Takes `units` from the budget; what would go past it is not done. */
function charge(units: number): void {
  if (units > meter.left) stop(meter.overrun?.kind ?? 'cost');
  meter.left -= units;
  if (--meter.tick <= 0) {
    meter.tick = CHARGES_PER_CLOCK_READ;
    const now = performance.now();
    if (Number.isNaN(meter.deadline)) meter.deadline = now + MAX_EVALUATION_MS;
    else if (now > meter.deadline) stop('time');
  }
}

function textSize(v: unknown): number {
  if (typeof v === 'string') return v.length;
  return v instanceof Uint8Array ? v.length : 0;
}

/** Internal functions the compiler wraps around parts of comprehensions; their names cannot be written in an expression. */
export const STEP = '@step';
export const RANGE = '@range';
export const APPEND = '@append';

/**
 * The functions of the policy CEL environment: the standard library and the
 * strings extension, every one of them charged, plus {@link STEP},
 * {@link RANGE} and {@link APPEND}.
 */
export function budgetedFunctions(lib: CelLib, strings: readonly CelFunc[], re2: Re2Lib): CelFunc[] {
  const { celEnv, celFunc, celMethod, celList, isCelError, isCelList, isCelMap, CelScalar, listType, mapType } = lib;
  const { BOOL, DOUBLE, DYN, INT, STRING, UINT } = CelScalar;
  const LIST = listType(DYN);
  const MAP = mapType(DYN, DYN);
  const plain = new Map([...celEnv({ funcs: [...strings] }).funcs].map((f) => [f.id, f]));
  const original = (id: string): CelFunc => {
    const f = plain.get(id);
    if (f === undefined) throw new Error(`@bufbuild/cel has no function ${id}`);
    return f;
  };
  /** Calls a library function from inside one of ours (which has charged for it already). */
  const delegate = (f: CelFunc, target: CelValue | undefined, args: CelValue[]): CelValue => {
    const result = f.call(meter.at ?? 0, target, args);
    if (result === undefined) throw new Error(`no overload of ${f.id} for these arguments`);
    if (isCelError(result)) throw result;
    return result;
  };

  /** Iterates a value's elements (a map's keys and values), one at a time, adding up their size. */
  class Walk {
    size = COST.compared;
    private readonly pending: Iterator<unknown>[] = [];
    constructor(v: unknown) {
      this.visit(v);
    }
    get done(): boolean {
      return this.pending.length === 0;
    }
    step(): void {
      const next = this.pending[this.pending.length - 1]!.next();
      if (next.done === true) this.pending.pop();
      else {
        this.size += COST.compared;
        this.visit(next.value);
      }
    }
    private visit(v: unknown): void {
      if (isCelList(v)) this.pending.push(v[Symbol.iterator]());
      else if (isCelMap(v)) this.pending.push(mapParts(v));
      else this.size += COST.char * textSize(v);
    }
  }
  function* mapParts(m: CelMap): Generator<unknown> {
    for (const [k, v] of m) {
      yield k;
      yield v;
    }
  }
  /** The size of all of `v`, walked no further than `cap`. */
  const sizeOf = (v: unknown, cap: number): number => {
    const w = new Walk(v);
    while (!w.done && w.size <= cap) w.step();
    return w.size;
  };
  /**
   * What comparing `l` and `r` costs: the size of the smaller, walking both
   * in step, so that a small value compared with a large one costs little.
   */
  const equalityCost = (l: unknown, r: unknown, cap: number): number => {
    if (l === r || typeof l !== 'object' || typeof r !== 'object' || l === null || r === null) return COST.char * Math.min(textSize(l), textSize(r));
    // Lists or maps of different sizes are told apart at once.
    if ((isCelList(l) && isCelList(r)) || (isCelMap(l) && isCelMap(r))) {
      if ((l as CelList | CelMap).size !== (r as CelList | CelMap).size) return 0;
    }
    const a = new Walk(l);
    const b = new Walk(r);
    for (;;) {
      const small = a.size <= b.size ? a : b;
      if (small.done || small.size > cap) return small.size;
      small.step();
    }
  };

  const equals = original('_==_(dyn,dyn)');
  const inList = original('@in(dyn,list)');
  const isEqual = (l: CelValue, r: CelValue): boolean => {
    charge(COST.call + equalityCost(l, r, meter.left));
    // The library's own answer for a string or a bool (nothing else equals one), without its dispatch.
    if (typeof l === 'string' || typeof l === 'boolean') return l === r;
    return delegate(equals, undefined, [l, r]) === true;
  };
  /** BigInt parses a long numeral in more than linear time (5,000 digits: 40 ns a digit; 1M digits: 75 ms). */
  const numeralCost = (s: string): number => COST.call + 40 * s.length + Math.floor((s.length * s.length) / 8192);
  /** The library's int(string) or uint(string), its error in CEL's words: it passes on JavaScript's "Cannot convert x to a BigInt". */
  const numeral = (f: CelFunc, s: string, to: 'int' | 'uint'): CelValue => {
    try {
      return delegate(f, undefined, [s]);
    } catch (err) {
      if (isCelError(err) && err.message.startsWith('Cannot convert ')) throw new Error(`cannot convert string "${s}" to ${to}`, { cause: err });
      throw err;
    }
  };
  /** A map keeps its keys as given: looking up a number scans them all (CEL's numbers are equal across int, uint and double). */
  const numericKeyCost = (m: CelMap): number => COST.call + 10 * m.size;
  const joinCost = (list: CelList, sep: string): number => {
    let cost = COST.call;
    for (const v of list) {
      cost += COST.element + COST.madeChar * (textSize(v) + sep.length);
      if (cost > meter.left) break;
    }
    return cost;
  };

  /**
   * `text.matches(pattern)`, charged as RE2 works: compiling, a step per
   * character, each state its DFA builds (a state costs the size of the
   * pattern's program; at most 10,000 before the DFA gives up) and, where it
   * gives up, the NFA's pass (the text's length times the program's size).
   * The last two are charged as they happen, from inside RE2JS
   * ({@link chargeInsideRe2}): a pattern whose DFA needs few states costs
   * little on a long text. Not cached: a compiled pattern keeps its DFA's
   * states.
   */
  const hooked = chargeInsideRe2(re2);
  const matches = (text: string, pattern: string): boolean => {
    charge(COST.call + COST.patternChar * pattern.length);
    const re = re2.RE2JS.compile(pattern);
    const size = Math.max(1, re.re2Input.prog.numInst());
    charge(COST.regexInstruction * size + 2 * COST.char * text.length);
    if (!hooked) charge(size * (COST.regexState * Math.min(text.length + 1, 10_001) + COST.regexStep * (text.length + 1)));
    return re.test(text);
  };

  /** Lists a `map` or `filter` is building: each appends to its own accumulator only. */
  const building = new WeakMap<CelList, CelValue[]>();

  // Methods on strings take their target as `String(this)`: where this module is bundled as sloppy-mode
  // CommonJS (the start-up snapshot), `this` is a String object, which CEL does not take back.
  const own: CelFunc[] = [
    celFunc(STEP, [BOOL], BOOL, (cond) => {
      if (--meter.stepsLeft < 0) stop('steps');
      // The clock is read every few steps at least: a step can hide work no charge sees.
      meter.tick -= CHARGES_PER_CLOCK_READ / 4 - 1;
      charge(COST.step);
      return cond;
    }),
    // A comprehension copies its range before the first step.
    celFunc(RANGE, [DYN], DYN, (range) => {
      charge(COST.call + COST.element * (isCelList(range) || isCelMap(range) ? range.size : 0));
      return range;
    }),
    // `map` and `filter` append one element per step: @bufbuild/cel's `+` on lists makes a chain of
    // views, one deeper per element, that every later read walks down (quadratic, and past ~10,000
    // elements a stack overflow). The accumulator is seen by nothing but its loop (its name,
    // `@result`, cannot be written in an expression), so appending in place is safe.
    celFunc(APPEND, [LIST, LIST], LIST, (accu, tail) => {
      const array = building.get(accu);
      if (array !== undefined) {
        charge(COST.call + COST.element * tail.size);
        for (const v of tail) array.push(v);
        return accu;
      }
      charge(COST.call + COST.element * (accu.size + tail.size));
      const fresh = [...accu, ...tail];
      const list = celList(fresh);
      building.set(list, fresh);
      return list;
    }),
    celFunc('_==_', [DYN, DYN], BOOL, isEqual),
    celFunc('_!=_', [DYN, DYN], BOOL, (l, r) => !isEqual(l, r)),
    celFunc('@in', [DYN, LIST], BOOL, (v, list) => {
      // Each element costs at most its own size to compare.
      charge(COST.call + COST.char * textSize(v) + sizeOf(list, meter.left));
      return delegate(inList, undefined, [v, list]) === true;
    }),
    ...([INT, UINT, DOUBLE] as const).map((t) => {
      const inMap = original(`@in(${t.name},map)`);
      return celFunc('@in', [t, MAP], BOOL, (key, map) => {
        charge(numericKeyCost(map));
        return delegate(inMap, undefined, [key, map]) === true;
      });
    }),
    celFunc('int', [STRING], INT, (s) => {
      charge(numeralCost(s));
      return numeral(original('int(string)'), s, 'int') as bigint;
    }),
    celFunc('uint', [STRING], UINT, (s) => {
      charge(numeralCost(s));
      return numeral(original('uint(string)'), s, 'uint') as CelModule.CelUint;
    }),
    celMethod('replace', STRING, [STRING, STRING], STRING, function (this: string, sub, repl) {
      return replace(String(this), sub, repl, undefined);
    }),
    celMethod('replace', STRING, [STRING, STRING, INT], STRING, function (this: string, sub, repl, n) {
      return replace(String(this), sub, repl, n);
    }),
    celMethod('split', STRING, [STRING], LIST, function (this: string, sep) {
      return celList(split(String(this), sep, undefined));
    }),
    celMethod('split', STRING, [STRING, INT], LIST, function (this: string, sep, n) {
      return celList(split(String(this), sep, n));
    }),
    celMethod('lowerAscii', STRING, [], STRING, function (this: string) {
      return mapAscii(String(this), 65, 90, 32);
    }),
    celMethod('upperAscii', STRING, [], STRING, function (this: string) {
      return mapAscii(String(this), 97, 122, -32);
    }),
    // The library counts code points by spreading the string into an array of them.
    celFunc('size', [STRING], INT, (s) => codePoints(s)),
    celMethod('size', STRING, [], INT, function (this: string) {
      return codePoints(String(this));
    }),
    celMethod('join', LIST, [], STRING, function (this: CelList) {
      charge(joinCost(this, ''));
      return delegate(original('list.join()'), this, []) as string;
    }),
    celMethod('join', LIST, [STRING], STRING, function (this: CelList, sep) {
      charge(joinCost(this, sep));
      return delegate(original('list.join(string)'), this, [sep]) as string;
    }),
    // A placeholder's text is at most its argument's (a list's elements and separators) or, for a
    // number, some hundred digits and signs (precision is capped at 100).
    celMethod('format', STRING, [LIST], STRING, function (this: string, args) {
      const text = String(this);
      charge(COST.call + 128 * COST.madeChar * text.length + sizeOf(args, meter.left));
      return delegate(original('string.format(list)'), text, [args]) as string;
    }),
    celMethod('matches', STRING, [STRING], BOOL, function (this: string, pattern) {
      return matches(String(this), pattern);
    }),
  ];
  const ownIds = new Set(own.map((f) => f.id));
  const all = [...celEnv({ funcs: [...strings, ...own] }).funcs];
  return all.map((f) => metered(f, ownIds.has(f.id) ? undefined : chargeFor(f)));
}

/** Library functions that cost more than a call: parsing a timestamp or a duration (~1-3 µs); a time zone's rules, loaded by name (~50 µs). */
const PARSE_COST = 3000;
const TIME_ZONE_COST = 30_000;

/** What a function of the library costs, charged once it returns: the call, the text it read and the text it made. */
function chargeFor(f: CelFunc): (target: CelValue | undefined, args: readonly CelValue[], result: unknown) => number {
  const parses = (f.name === 'timestamp' || f.name === 'duration') && f.arguments[0]?.name === 'string';
  const zoned = f.target?.name === 'google.protobuf.Timestamp' && f.arguments.length === 1;
  const base = COST.call + (parses ? PARSE_COST : 0) + (zoned ? TIME_ZONE_COST : 0);
  return (target, args, result) => {
    let units = base + COST.char * textSize(target) + COST.madeChar * textSize(result);
    for (const a of args) units += COST.char * textSize(a);
    return units;
  };
}

type Re2Engine = Re2Module.RE2JS['re2Input'];
type Re2Dfa = Re2Engine['dfa'];

/**
 * Makes RE2JS charge the meter where its time goes: each state its DFA
 * builds, and the NFA pass it falls back to. RE2JS has no hook for it, so
 * its two methods are wrapped, once, on their prototypes (wrapping them on
 * each compiled pattern made V8 deoptimise RE2JS: `matches` ran 70 % slower).
 * Outside an evaluation the meter is unlimited and they cost nothing more.
 * False when RE2JS is not built as expected (then `matches` charges the
 * worst case up front).
 */
function chargeInsideRe2(re2: Re2Lib): boolean {
  const probe = re2.RE2JS.compile('a').re2Input;
  const engine = Object.getPrototypeOf(probe) as Re2Engine;
  const dfa = Object.getPrototypeOf(probe.dfa) as Re2Dfa;
  if (typeof dfa.getState !== 'function' || typeof engine._nfaFallback !== 'function' || typeof probe.prog.numInst !== 'function') return false;
  if (Object.hasOwn(dfa.getState, CHARGED)) return true;
  const getState = dfa.getState;
  const nfa = engine._nfaFallback;
  dfa.getState = Object.assign(
    function (this: Re2Dfa, pcs: number[]) {
      charge(COST.regexState * this.prog.numInst());
      return getState.call(this, pcs);
    },
    { [CHARGED]: true },
  );
  engine._nfaFallback = function (this: Re2Engine, input, pos, anchor) {
    charge(COST.regexStep * this.prog.numInst() * (input.endPos() - pos + 1));
    return nfa.call(this, input, pos, anchor);
  };
  return true;
}

const CHARGED = Symbol('charged by the CEL meter');

/** The string with the ASCII letters from `from` to `to` shifted by `by`, other characters as they are; linear. */
function mapAscii(text: string, from: number, to: number, by: number): string {
  charge(COST.call + (COST.char + COST.madeChar) * text.length);
  if (!NON_ASCII.test(text)) return by > 0 ? text.toLowerCase() : text.toUpperCase();
  const parts: string[] = [];
  const codes = new Array<number>(Math.min(text.length, 8192));
  for (let start = 0; start < text.length; start += 8192) {
    const end = Math.min(text.length, start + 8192);
    codes.length = end - start;
    for (let i = start; i < end; i++) {
      const c = text.charCodeAt(i);
      codes[i - start] = c >= from && c <= to ? c + by : c;
    }
    parts.push(String.fromCharCode(...codes));
  }
  return parts.join('');
}

const NON_ASCII = /[\u0080-\uffff]/;

/** The number of code points (a lone surrogate is one), as the library counts them, without making an array of them. */
function codePoints(text: string): bigint {
  charge(COST.call + 3 * COST.char * text.length);
  let pairs = 0;
  for (let i = 0; i < text.length - 1; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        pairs += 1;
        i += 1;
      }
    }
  }
  return BigInt(text.length - pairs);
}

/**
 * The strings extension's `replace`, in linear time, with its results: the
 * first `n` matches of `sub`, left to right, none overlapping (all of them
 * without `n`, none for a negative `n`); an empty `sub` puts `n` copies of
 * `repl` (or as many as the text has characters) before the text.
 */
function replace(text: string, sub: string, repl: string, n: bigint | undefined): string {
  charge(COST.call + COST.char * (text.length + sub.length + repl.length));
  const limit = n === undefined ? text.length : n < 0n ? 0 : Number(n);
  if (sub === '') {
    charge(COST.madeChar * (limit * repl.length + text.length));
    return repl.repeat(repl === '' ? 0 : limit) + text;
  }
  const at: number[] = [];
  for (let i = text.indexOf(sub); i !== -1 && at.length < limit; i = text.indexOf(sub, i + sub.length)) {
    at.push(i);
    // Charged as found: a text of a million matches stops at the budget, not after it.
    charge(COST.match + COST.madeChar * repl.length);
  }
  if (at.length === 0) return text;
  charge(COST.madeChar * (text.length - at.length * sub.length));
  const parts: string[] = [];
  let from = 0;
  for (const i of at) {
    parts.push(text.slice(from, i), repl);
    from = i + sub.length;
  }
  parts.push(text.slice(from));
  return parts.join('');
}

/** The strings extension's `split` (JavaScript's, with `n` as its limit), charged for the list before it is made. */
function split(text: string, sep: string, n: bigint | undefined): string[] {
  charge(COST.call + COST.char * (text.length + sep.length));
  const count = n === undefined ? undefined : Number(n);
  if (count === 1) return [text];
  // JavaScript reads the limit as an unsigned 32-bit number: -1 is no limit.
  const limit = count === undefined ? Number.POSITIVE_INFINITY : count >>> 0;
  let pieces: number;
  if (sep === '') pieces = Math.min(text.length, limit);
  else {
    pieces = 1;
    for (let i = text.indexOf(sep); i !== -1 && pieces < limit; i = text.indexOf(sep, i + sep.length)) {
      pieces += 1;
      if (pieces * COST.element > meter.left) break;
    }
    pieces = Math.min(pieces, limit);
  }
  charge(COST.element * pieces + COST.madeChar * text.length);
  return text.split(sep, count);
}

/**
 * `f`, charged: functions of ours charge for themselves (`charge`
 * undefined), and only say where they are; any other is charged once it
 * returns. A CelFunc cannot be made outside @bufbuild/cel (it carries a
 * private symbol), so the wrapper is `f` itself with `call` replaced.
 */
function metered(f: CelFunc, price: ((target: CelValue | undefined, args: readonly CelValue[], result: unknown) => number) | undefined): CelFunc {
  const call: CelFunc['call'] =
    price === undefined
      ? (id, target, args) => {
          meter.at = id;
          return f.call(id, target, args);
        }
      : (id, target, args) => {
          meter.at = id;
          const result = f.call(id, target, args);
          // Undefined: not this overload, nothing done.
          if (result !== undefined) charge(price(target, args, result));
          return result;
        };
  const wrapped = Object.create(f) as CelFunc;
  Object.defineProperty(wrapped, 'call', { value: call });
  return wrapped;
}
