/**
 * The fake upstreams (testkit/fakes) as a test fixture: one call registers the hooks every
 * test file used to write by hand (`beforeAll` start, `afterAll` close, and with `resetEach`
 * a `beforeEach` reset) in the describe block it is called in, or for the whole file at the
 * top level.
 *
 *   const { gemini, exa } = useFakeUpstreams({ resetEach: true });
 *   beforeAll(() => { rt = makeRuntime({ ..., env: { GEMINI_BASE_URL: gemini.url, EXA_BASE_URL: exa.url } }); });
 *
 * The returned fakes are stand-ins that forward to the servers once the `beforeAll` started
 * them, so they can be destructured at collection time and used in any later hook or test.
 * Call this before the block's own `beforeAll`: hooks run in the order they are registered,
 * so the block's setup sees started fakes, and (vitest runs `afterAll` hooks in reverse) its
 * teardown runs before the fakes close.
 */
import { afterAll, beforeAll, beforeEach } from "vitest";
import { startFakeGemini, type FakeGemini, type FakeGeminiOptions } from "../../testkit/fakes/gemini.js";
import { startFakeExa, type FakeExa } from "../../testkit/fakes/exa.js";

export interface FakeUpstreamOptions {
  /** Forget modes and recorded requests before every test of the block (default: only when a test resets). */
  resetEach?: boolean;
}

export interface FakeUpstreams {
  gemini: FakeGemini;
  exa: FakeExa;
}

/** The fake Gemini and the fake Exa, started together for the enclosing block. */
export function useFakeUpstreams(options: FakeUpstreamOptions & { gemini?: FakeGeminiOptions } = {}): FakeUpstreams {
  let started: FakeUpstreams | undefined;
  beforeAll(async () => {
    const [gemini, exa] = await Promise.all([startFakeGemini(options.gemini), startFakeExa()]);
    started = { gemini, exa };
  });
  afterAll(async () => {
    await Promise.all([started?.gemini.close(), started?.exa.close()]);
    started = undefined;
  });
  if (options.resetEach) {
    beforeEach(() => {
      started?.gemini.reset();
      started?.exa.reset();
    });
  }
  return {
    gemini: standIn("fake Gemini", () => started?.gemini),
    exa: standIn("fake Exa", () => started?.exa),
  };
}

/** The fake Gemini alone (tests of the Gemini wrapper). */
export function useFakeGemini(options: FakeUpstreamOptions & FakeGeminiOptions = {}): FakeGemini {
  return useOne("fake Gemini", () => startFakeGemini(options), options);
}

/** The fake Exa alone (tests of the Exa wrapper). */
export function useFakeExa(options: FakeUpstreamOptions = {}): FakeExa {
  return useOne("fake Exa", startFakeExa, options);
}

function useOne<T extends FakeGemini | FakeExa>(name: string, start: () => Promise<T>, options: FakeUpstreamOptions): T {
  let started: T | undefined;
  beforeAll(async () => {
    started = await start();
  });
  afterAll(async () => {
    await started?.close();
    started = undefined;
  });
  if (options.resetEach) beforeEach(() => started?.reset());
  return standIn(name, () => started);
}

/** An object that forwards every property access to `current()`, failing clearly outside the fixture's lifetime. */
function standIn<T extends object>(name: string, current: () => T | undefined): T {
  const target = (): T => {
    const value = current();
    if (!value) throw new Error(`${name} is not running: use it inside a hook or test of the block that called the fixture`);
    return value;
  };
  return new Proxy({} as T, {
    get: (_, property) => Reflect.get(target(), property),
    set: (_, property, value) => Reflect.set(target(), property, value),
    has: (_, property) => Reflect.has(target(), property),
    ownKeys: () => Reflect.ownKeys(target()),
    getOwnPropertyDescriptor: (_, property) => {
      const descriptor = Reflect.getOwnPropertyDescriptor(target(), property);
      // A proxy may report a property only as configurable when its (empty) target lacks it.
      return descriptor && { ...descriptor, configurable: true };
    },
  });
}
