"""Issue 17: the browser hooks as an npm package another React app installs.

``npm pack`` the package (frontend/packages/realtime), install the tarball into a scratch Vite
app in a temporary folder, and type-check (``tsc --noEmit``) and build (``vite build``) a
component that renders ``useTaskProgress`` under ``RealtimeProvider``, as the package's README
shows. The scratch app pins react, typescript and vite to the versions the frontend's lock file
installed, so npm finds them in its cache (``make frontend`` ran ``npm ci`` first).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# Four npm steps of up to STEP_SECONDS each (pack, install, tsc, vite build): past the global
# 120 s on a loaded two-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(450)]

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
PACKAGE = FRONTEND / "packages" / "realtime"
NAME = "@infinitescribe/realtime"
SCRATCH_DEPENDENCIES = (
    "react",
    "react-dom",
    "@types/react",
    "@types/react-dom",
    "typescript",
    "vite",
)
STEP_SECONDS = 100

COMPONENT = """\
import { RealtimeProvider, type TaskProgress, useTaskProgress } from "@infinitescribe/realtime";
import { createRoot } from "react-dom/client";

function Progress({ taskId }: { taskId: string }) {
  const progress: TaskProgress = useTaskProgress(taskId, { notify: false });
  const eta: number | null = progress.etaSeconds;
  return (
    <progress max={100} value={progress.percent} title={`${progress.status} ${eta ?? ""}`} />
  );
}

createRoot(document.getElementById("root") as HTMLElement).render(
  <RealtimeProvider userId="writer-1" token={() => "a-jwt"} onTaskEnd={(t) => alert(t.status)}>
    <Progress taskId="task-1" />
  </RealtimeProvider>,
);
"""

TSCONFIG = {
    "compilerOptions": {
        "target": "ES2022",
        "lib": ["ES2022", "DOM", "DOM.Iterable"],
        "module": "ESNext",
        "moduleResolution": "bundler",
        "jsx": "react-jsx",
        "strict": True,
        "noEmit": True,
        "types": [],
    },
    "include": ["src"],
}

INDEX_HTML = """\
<!doctype html>
<html><body><div id="root"></div><script type="module" src="/src/main.tsx"></script></body></html>
"""


def run(args: list[str], cwd: Path) -> str:
    """Run one npm/npx step, bounded in time; its output on failure."""
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=STEP_SECONDS, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def installed_version(name: str) -> str:
    """The version of ``name`` the frontend's ``npm ci`` installed (so npm's cache has it)."""
    manifest = FRONTEND / "node_modules" / name / "package.json"
    if not manifest.exists():
        pytest.fail(f"{manifest} is missing: run `make frontend` first")
    return str(json.loads(manifest.read_text())["version"])


def pack(destination: Path) -> Path:
    """``npm pack`` the package (its prepack builds dist/): the tarball's path."""
    out = run(["npm", "pack", "--json", "--pack-destination", str(destination)], PACKAGE)
    (entry,) = json.loads(out[out.index("[") :])
    files = {f["path"] for f in entry["files"]}
    expected = {"package.json", "README.md", "dist/index.js", "dist/index.d.ts", "dist/testing.js"}
    assert expected <= files, files
    assert not any(path.startswith(("src/", "tests/")) for path in files), files
    return destination / str(entry["filename"])


def scratch_app(folder: Path, tarball: Path) -> None:
    """A Vite + React + TypeScript app depending on the tarball, as another team's app would."""
    dependencies = {name: installed_version(name) for name in SCRATCH_DEPENDENCIES}
    dependencies[NAME] = f"file:{tarball}"
    manifest = {"name": "scratch", "private": True, "type": "module", "dependencies": dependencies}
    (folder / "package.json").write_text(json.dumps(manifest, indent=2))
    (folder / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2))
    (folder / "index.html").write_text(INDEX_HTML)
    (folder / "src").mkdir()
    (folder / "src" / "main.tsx").write_text(COMPONENT)


def test_the_packed_package_type_checks_and_builds_in_another_app() -> None:
    if shutil.which("npm") is None:
        pytest.fail("npm is not installed (scripts/install-system-deps.sh installs Node.js)")
    with tempfile.TemporaryDirectory(prefix="realtime-pack-") as temp:
        app = Path(temp) / "app"
        app.mkdir()
        scratch_app(app, pack(Path(temp)))
        run(["npm", "install", "--prefer-offline", "--no-audit", "--no-fund"], app)
        installed = app / "node_modules" / "@infinitescribe" / "realtime"
        assert not installed.is_symlink(), "the tarball's copy, not the workspace's folder"
        run(["npx", "--no-install", "tsc", "--noEmit", "-p", "."], app)
        run(["npx", "--no-install", "vite", "build", "--logLevel", "warn"], app)
        bundle = "".join(p.read_text() for p in (app / "dist" / "assets").glob("*.js"))
        assert "/api/v1/events/stream" in bundle, "the package's client is in the app's bundle"
