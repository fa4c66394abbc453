#!/usr/bin/env bash
# One-off, idempotent: move the page scripts from pages/ to views/ and rewrite every reference in tracked files.
# Why: Streamlit runs the first session of every server in its legacy multipage mode whenever a `pages/` folder sits
# next to the entry script (streamlit/runtime/pages_manager.py, `uses_pages_directory`), before app.py's
# st.navigation runs: a shared deep link then showed "Page not found" and the home page. There is no config option
# to turn that discovery off (Streamlit 1.67), so the folder is named views/.
# For merging: after merging branches that still use pages/, run this once on the result and commit.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
if [ -d pages ]; then
  mkdir -p views
  for f in $(git ls-files pages); do
    mkdir -p "views/$(dirname "${f#pages/}")"
    git mv -k "$f" "views/${f#pages/}"
  done
  # Any leftover (e.g. __pycache__) would keep the folder, and with it Streamlit's legacy mode.
  if [ -z "$(git ls-files pages)" ]; then rm -rf pages; fi
fi
git ls-files -z -- '*.py' '*.md' '*.toml' '*.ini' '*.txt' '.ci/*' \
  | grep -zv '^tests/test_browser_first_session.py$' \
  | xargs -0 sed -i -E 's#(["`( '"'"'])pages/#\1views/#g; s#\bpages\.components#views.components#g; s#\bfrom pages import#from views import#g'
echo "views/ → views/ done; remaining mentions of pages/ or pages.:"
git grep -nE "(^|[\"\`( '])pages[./]" -- ':!tests/test_browser_first_session.py' ':!scripts/pages_to_views.sh' || true
