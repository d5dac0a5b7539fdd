#!/usr/bin/env bash
# Builds the Vercel functions exactly as the platform would, with the real Vercel CLI
# (pinned in devDependencies), offline: no token, no project link, no network.
#
#   bash scripts/vercel-build.sh      # then: npx vitest run --config vitest.vercel.config.ts (or npm run test:vercel)
#
# Output: .vercel/output (Build Output API v3). Each endpoint file api/X.ts becomes
# .vercel/output/functions/api/X.func/. vercel build writes it as the transpiled entry plus
# every traced file of node_modules (hundreds of files, loaded one by one at cold start);
# scripts/bundle-functions.ts then rewrites each folder in place as one minified ESM bundle
# (index.mjs, lazy chunks in chunks/, source maps) and points .vc-config.json's handler at it.
# Ship it with `vercel deploy --prebuilt` (a build on Vercel's side would ship the traced layout).
#
# How it stays offline:
# - `vercel build` needs `.vercel/project.json`; with project settings present it never
#   asks the API for them. A hand-made one is written unless the folder is linked to a real
#   project (`vercel link`), which is then used as it is.
# - VERCEL_INSTALL_COMPLETED=1: dependencies come from `npm ci`; without it the builder
#   runs its own `npm install`.
# - NO_UPDATE_NOTIFIER / VERCEL_TELEMETRY_DISABLED: no update check, no telemetry.
# - Where the kernel allows it (root), the build runs in an empty network namespace, so a
#   step that does reach for the network fails here instead of passing by luck.
set -euo pipefail

cd "$(dirname "$0")/.."

vercel_bin=node_modules/.bin/vercel
if [[ ! -x "$vercel_bin" ]]; then
  echo "vercel-build: $vercel_bin is missing; run npm ci (vercel is pinned in devDependencies)" >&2
  exit 1
fi

placeholder_project_id="prj_byok_offline_build"
mkdir -p .vercel
if [[ -f .vercel/project.json ]] && ! grep -q "\"$placeholder_project_id\"" .vercel/project.json; then
  echo "vercel-build: using the linked project in .vercel/project.json"
else
  # The settings `vercel pull` would write for a "Other" (no framework) project; vercel.json
  # overrides them where it says something (outputDirectory, functions, rewrites).
  cat > .vercel/project.json <<EOF
{
  "projectId": "$placeholder_project_id",
  "orgId": "team_byok_offline_build",
  "settings": {
    "framework": null,
    "devCommand": null,
    "installCommand": null,
    "buildCommand": null,
    "outputDirectory": null,
    "rootDirectory": null,
    "directoryListing": false,
    "nodeVersion": "24.x"
  }
}
EOF
fi

rm -rf .vercel/output

# A clean, explicit environment: nothing from the caller's shell (DATABASE_URL, VERCEL,
# tokens) can leak into the build or change what it produces.
build_env=(
  env -i
  "PATH=$PATH"
  "HOME=${HOME:-/root}"
  "TMPDIR=${TMPDIR:-/tmp}"
  "LANG=${LANG:-C.UTF-8}"
  CI="${CI:-}"
  VERCEL_INSTALL_COMPLETED=1
  VERCEL_TELEMETRY_DISABLED=1
  NO_UPDATE_NOTIFIER=1
  FORCE_COLOR=0
  "CLERK_PUBLISHABLE_KEY=${CLERK_PUBLISHABLE_KEY:-}" # the web app's exact CSP (scripts/vercel-headers.ts, from vercel.json buildCommand)
)

offline=()
if command -v unshare >/dev/null 2>&1 && unshare --net true 2>/dev/null; then
  offline=(unshare --net)
  echo "vercel-build: building in an empty network namespace (no network at all)"
else
  echo "vercel-build: cannot create a network namespace here; building without one (still no token, no install)"
fi

"${build_env[@]}" "${offline[@]}" "$vercel_bin" build --yes

# Each traced function -> one bundle (same clean environment, same empty network namespace).
"${build_env[@]}" "${offline[@]}" node_modules/.bin/tsx scripts/bundle-functions.ts

echo
echo "vercel-build: functions in .vercel/output/functions:"
find .vercel/output/functions -name .vc-config.json -print | sort | while read -r config; do
  dir=$(dirname "$config")
  handler=$(node -e 'const c=require(process.argv[1]);process.stdout.write(`${c.handler} (${c.runtime}, maxDuration ${c.maxDuration ?? "default"})`)' "$PWD/$config")
  # Sum of file sizes (what tests/vercel/output.happy.test.ts holds to 4 MiB), not disk blocks.
  size=$(find "$dir" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.2f MiB", s / 1048576 }')
  echo "  ${dir#.vercel/output/functions/}  ->  $handler  [$size]"
done
