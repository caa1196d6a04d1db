"""`aaexp report --html OUT_DIR`: one static folder per study (index.html + the artifacts it shows).

The runs are the ones `aaexp report` selects; each folder opens from disk with no server (links are
relative, artifacts are copied in). build.py drives it; aa_page.py and other_page.py turn runs into
what the templates (templates/*.html.j2, Jinja2) render; run_files.py copies a run's artifacts.
"""
