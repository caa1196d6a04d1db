"""The config tree ships inside the package, so a wheel install finds it with no repo around."""

import os
import subprocess
import sys
import zipfile

from .helpers import REPO


def test_wheel_carries_the_config_tree_and_composes_from_it(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    [wheel] = tmp_path.glob("aaexp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "aaexp/conf/config.yaml" in names
    assert any(n.startswith("aaexp/conf/experiment/") for n in names)
    templates = "aaexp/commands/report_html/templates/"   # aaexp report --html
    assert {templates + "aa.html.j2", templates + "other.html.j2"} <= names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # Compose from the unpacked wheel in a folder far from the repo: no editable path involved.
    code = ("import aaexp.core.config as c, aaexp.commands.train as t; assert str(site) in c.__file__, c.__file__;"
            "cfg = c.compose(['trainer=quick']); print(cfg.study.name, cfg.trainer.profile)")
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}
    r = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); site={str(site)!r}; " + code],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["aa", "quick"]
