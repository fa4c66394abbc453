"""Issue 32: from Home, each use's first pages show every table column whole at 1,400 and 1,024 px.

A column may scroll out of its table (horizontal scroll is fine); what it shows may not be cut. ``st.dataframe`` draws
its cells on a canvas (Glide Data Grid), so the DOM has no cell boxes to measure: the check reads the grid's own
columns (title, drawn width), theme (font, cell padding) and cell texts from the React props of its canvas, and
measures each text with ``CanvasRenderingContext2D.measureText`` in the grid's font, against the column's width less
its padding. ``st.table`` is HTML: a cell whose content is wider than its box is cut.
"""
import time

import pytest

from tests.browser.helpers import exceptions_on_page, open_app_page, wait_until_idle, wait_for_lazy_elements

pytestmark = pytest.mark.browser

USES = ("Explore a model", "Give a demo", "Plan hardware")
# Pages whose default content holds tables: the check must have found them there, or it checked nothing.
PAGES_WITH_TABLES = ("/memory", "/compute", "/serving")

CLIPPED_COLUMNS_JS = """
() => {
  const clipped = [], checked = [];
  const ctx = document.createElement('canvas').getContext('2d');
  const widthOf = (text, font) => { ctx.font = font; return ctx.measureText(text).width; };
  const gridProps = (canvas) => {  // the props of Glide's DataGrid: columns with their drawn widths, theme, cells
    const key = Object.keys(canvas).find(k => k.startsWith('__reactFiber$'));
    for (let f = key && canvas[key], depth = 0; f && depth < 40; f = f.return, depth++) {
      const p = f.memoizedProps;
      if (p && Array.isArray(p.columns) && typeof p.getCellContent === 'function' && p.theme) return p;
    }
    return null;
  };
  document.querySelectorAll('[data-testid="stMain"] [data-testid="stDataFrame"]').forEach((frame, n) => {
    if (frame.offsetParent === null) return;  // in a closed tab or expander
    const name = `dataframe ${n}`;
    const canvas = frame.querySelector('canvas[data-testid="data-grid-canvas"]');
    const p = canvas && gridProps(canvas);
    if (!p) { clipped.push({table: name, problem: 'grid not drawn or its props not found'}); return; }
    const t = p.theme, pad = t.cellHorizontalPadding;
    const cellFont = `${t.baseFontStyle} ${t.fontFamily}`, headerFont = `${t.headerFontStyle} ${t.fontFamily}`;
    const titles = p.columns.map(c => c.title);
    checked.push({table: name, columns: titles, widths: p.columns.map(c => c.width), rows: p.rows});
    p.columns.forEach((c, i) => {
      if (!c.title) return;  // the row-marker column
      const room = c.width - 2 * pad;
      const headerRoom = room - (c.icon ? t.headerIconSize + pad : 0);
      const hw = widthOf(c.title, headerFont);
      if (hw > headerRoom + 0.5)
        clipped.push({table: name, titles, column: c.title, width: c.width, text: c.title, text_px: Math.round(hw)});
      for (let r = 0; r < Math.min(p.rows, 1000); r++) {
        let cell;
        try { cell = p.getCellContent([i, r]); } catch (e) { continue; }
        const text = cell && (typeof cell.displayData === 'string' ? cell.displayData
                              : (typeof cell.data === 'string' ? cell.data : null));
        if (!text) continue;
        const w = widthOf(text, cellFont);
        if (w > room + 0.5) {
          clipped.push({table: name, titles, column: c.title, width: c.width, row: r, text: text.slice(0, 100),
                        text_px: Math.round(w)});
          break;
        }
      }
    });
  });
  document.querySelectorAll('[data-testid="stMain"] [data-testid="stTable"] table').forEach((table, n) => {
    if (table.offsetParent === null) return;
    const name = `table ${n}`, heads = Array.from(table.querySelectorAll('thead th')).map(th => th.innerText);
    checked.push({table: name, columns: heads});
    table.querySelectorAll('th, td').forEach(cell => {
      if (cell.scrollWidth > cell.clientWidth + 1)
        clipped.push({table: name, titles: heads, column: heads[cell.cellIndex] ?? cell.cellIndex,
                      text: cell.innerText.slice(0, 100), text_px: cell.scrollWidth, width: cell.clientWidth});
    });
  });
  return {checked, clipped};
}
"""


def wait_until_drawn(page, timeout: float = 300) -> None:
    """The page's default content is drawn: no spinner (a model loading, a default computation) and no script
    running, then every chart drawn."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        wait_until_idle(page, timeout=max(1.0, deadline - time.time()))
        if page.locator('[data-testid="stMain"] [data-testid="stSpinner"]').count() == 0:
            break
        time.sleep(0.5)
    else:
        raise TimeoutError("the page kept a spinner")
    wait_for_lazy_elements(page, timeout=max(1.0, deadline - time.time()))
    # Every visible dataframe has drawn its grid: one outside the viewport may wait until it is scrolled to.
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('[data-testid="stMain"] [data-testid="stDataFrame"]'))
                 .filter(f => f.offsetParent !== null)
                 .every(f => f.querySelector('canvas[data-testid="data-grid-canvas"]') || f.scrollIntoView())""",
        timeout=60_000, polling=500)


def home_steps(page) -> list[tuple[str, str]]:
    """(use, step label) of every first step Home offers, in its order."""
    main = page.locator('[data-testid="stMain"]')
    steps = []
    for use in USES:
        box = main.locator('[data-testid="stVerticalBlockBorderWrapper"], [data-testid="stVerticalBlock"]',
                           has=page.locator("h3", has_text=use)).last
        labels = box.locator('[data-testid="stPageLink-NavLink"]').all_inner_texts()
        steps += [(use, label.strip().split("\n")[-1].strip()) for label in labels]  # after its icon's name
    return steps


def clipped_on_this_page(page) -> tuple[list[dict], list[dict]]:
    """Open every expander and visit every tab of the page (none of which reruns it), and check each view's tables."""
    main = page.locator('[data-testid="stMain"]')
    tabs = main.locator('[role="tab"]')
    checked, clipped = [], []
    for i in range(max(1, tabs.count())):
        if tabs.count():
            tabs.nth(i).click()
            page.wait_for_timeout(300)
        for summary in main.locator('[data-testid="stExpander"] details:not([open]) > summary').all():
            if summary.is_visible():
                summary.click()
        wait_until_drawn(page, timeout=60)
        found = page.evaluate(CLIPPED_COLUMNS_JS)
        checked += found["checked"]
        clipped += found["clipped"]
    return checked, clipped


@pytest.mark.parametrize("width", [1400, 1024])
def test_no_table_column_is_cut_on_the_pages_home_starts_from(app_url, page, width):
    page.set_viewport_size({"width": width, "height": 1000})
    open_app_page(page, app_url, "/")
    steps = home_steps(page)
    assert [use for use, _ in steps] == [u for u in USES for _ in range(3)], steps
    checked_by_path, problems = {}, []
    for use, label in steps:
        open_app_page(page, app_url, "/")
        page.locator('[data-testid="stMain"] [data-testid="stPageLink-NavLink"]', has_text=label).first.click()
        page.wait_for_function("() => location.pathname.replace(/\\/$/, '') !== ''", timeout=60_000)
        page.wait_for_selector('[data-testid="stMain"] h1', timeout=120_000)
        wait_until_drawn(page)
        path = "/" + page.url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        assert exceptions_on_page(page) == [], (use, label)
        if path in checked_by_path:  # Explore and Demo both start on Generate
            continue
        checked, clipped = clipped_on_this_page(page)
        checked_by_path[path] = checked
        problems += [dict(page=path, step=label, **c) for c in clipped]
    for path, checked in checked_by_path.items():  # what was measured, for the log (pytest -s)
        print(width, path, [(c["table"], len(c["columns"]), c.get("rows")) for c in checked])
    for path in PAGES_WITH_TABLES:
        assert checked_by_path.get(path), (path, "no table checked", sorted(checked_by_path))
    assert problems == [], f"{len(problems)} cut column(s) at {width} px:\n" + "\n".join(map(str, problems))
