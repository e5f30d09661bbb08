#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine as root: installs and starts every real component the
# tests use (Debian packages, FerretDB, libvirtd, Open vSwitch, the guest image), then runs typecheck, lint,
# format check, npm audit and every vitest file. Under CI=true a missing component fails its tests.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=../rftest/lib/lab.sh
source rftest/lib/lab.sh

lab_log "bringing up the lab (packages, MongoDB-wire server, libvirtd, Open vSwitch)"
lab_up
lab_node_deps "$repo"
lab_log "rfboot doctor"
lab_doctor "$repo" || exit 1
if [ -x rftest/guest/build-guest.sh ]; then
  lab_log "building the test guest (cached)"
  rftest/guest/build-guest.sh >/dev/null
fi

export CI="${CI:-true}"
status=0
npm run --silent typecheck || status=1
npm run --silent lint || status=1
npm run --silent format:check || status=1
# npm audit at level high: advisories fail the run. An advisory endpoint that refuses to answer (this
# workplace's registry proxy answers HTTP 405 to the POST npm audit makes) gives no verdict: said, not failed.
audit_json="$(npm audit --omit=dev --audit-level=high --json 2>/dev/null || true)"
if ! node -e '
  const r = JSON.parse(process.argv[1] || "{}");
  if (r.statusCode || r.error) { console.log(`npm audit: no verdict, the advisory endpoint answered ${r.statusCode ?? r.error?.code}`); process.exit(0); }
  const v = r.metadata?.vulnerabilities ?? {};
  const bad = (v.high ?? 0) + (v.critical ?? 0);
  console.log(`npm audit: ${bad} high/critical advisories in production dependencies`);
  process.exit(bad > 0 ? 1 : 0);
' "$audit_json"; then status=1; fi

mkdir -p bench/out
report=bench/out/vitest-report.json
# Under the lab's subreaper where orphans are not reaped: the tests start private libvirtd instances, Mininet and
# daemons of their own, whose orphans must not pile up as zombies that libvirtd waits on.
lab_reaper
"${LAB_REAPER[@]}" npx vitest run --reporter=default --reporter=json --outputFile="$report" || status=1
if [ -f "$report" ]; then
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
  ' "$report"
else
  echo "0 passed, 1 failed"
  status=1
fi
exit "$status"
