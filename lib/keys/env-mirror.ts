/**
 * The development copy of the caller's keys in the `.env` file (`ENV_FILE`), and of the keys a
 * frontend reads (`REACT_APP_COPILOTKIT_API_KEY`) in `FRONTEND_ENV_FILE` when that is set: the
 * one place that writes or removes them, for saving a key, deleting one and deleting the
 * account. Production never writes a file: there every call does nothing.
 */
import type { Deps } from "../platform/runtime.js";
import { providerInfo, providers, type Provider } from "../providers/registry.js";

export interface EnvMirror {
  /** True in development: keys are mirrored into the .env file(s). */
  readonly active: boolean;
  /** Writes `keys` (only the ones that changed: the caller passes nothing else). Nothing to write: no file is touched. */
  write(keys: Partial<Record<Provider, string>>): Promise<void>;
  /** Removes the keys of `removed` from the file(s). */
  remove(removed: readonly Provider[]): Promise<void>;
}

/** The mirror for this request's configuration (see the file comment). */
export function envMirror(deps: Pick<Deps, "config" | "envWriter">): EnvMirror {
  const { config, envWriter } = deps;
  const active = config.mode === "development";
  const frontendFile = config.frontendEnvFile;
  return {
    active,
    async write(keys) {
      if (!active) return;
      const backend: Record<string, string> = {};
      const frontend: Record<string, string> = {};
      for (const provider of providers) {
        const value = keys[provider];
        if (!value) continue;
        const info = providerInfo[provider];
        backend[info.envVar] = value;
        if (info.frontendEnvVar) frontend[info.frontendEnvVar] = value;
      }
      if (Object.keys(backend).length > 0) await envWriter.set(config.envFile, backend);
      if (frontendFile && Object.keys(frontend).length > 0) await envWriter.set(frontendFile, frontend);
    },
    async remove(removed) {
      if (!active) return;
      const ordered = providers.filter((p) => removed.includes(p));
      await envWriter.unset(
        config.envFile,
        ordered.map((p) => providerInfo[p].envVar),
      );
      const frontendVars = ordered.map((p) => providerInfo[p].frontendEnvVar).filter((v): v is string => v !== undefined);
      if (frontendFile && frontendVars.length > 0) await envWriter.unset(frontendFile, frontendVars);
    },
  };
}
