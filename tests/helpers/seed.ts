/**
 * The seed of a randomised test (fast-check, or anything else drawn at random), logged so that a
 * failure can be replayed: `FC_SEED=<seed> npx vitest run <file>` gives every randomised test of
 * the run that seed.
 */

const logged = new Map<string, number>();
/**
 * The real clock, taken when this module loads: a test that freezes `Date` (vi.useFakeTimers,
 * vi.setSystemTime) would otherwise get the same "random" seed on every run.
 */
const realDateNow = Date.now;

/**
 * `FC_SEED` when set, else `Date.now() % 2 ** 31` (the real clock, even under fake timers),
 * logged once per label as `"<label>: fast-check seed N (FC_SEED=N replays it)"`. The same label
 * asked again in the same process answers the same seed (and does not log it twice).
 */
export function testSeed(label: string): number {
  const known = logged.get(label);
  if (known !== undefined) return known;
  const fromEnv = process.env.FC_SEED;
  const seed = fromEnv !== undefined && fromEnv !== "" ? Number(fromEnv) : realDateNow() % 2 ** 31;
  if (!Number.isSafeInteger(seed)) throw new Error(`FC_SEED must be an integer, not ${JSON.stringify(fromEnv)}`);
  logged.set(label, seed);
  console.info(`${label}: fast-check seed ${seed} (FC_SEED=${seed} replays it)`);
  return seed;
}

/** A reproducible stream of numbers in [0, 1) from `seed` (mulberry32), for a test that would use Math.random. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
