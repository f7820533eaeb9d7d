// The dashboard's leaderboard panel: the top performers among the portfolios that opted
// in to the public board, live over /ws/top?n=10 ({"type": "top-performers", "data":
// [entries]}, at once and whenever the top ten change), or by polling
// /api/leaderboard/top?n=10 while the socket cannot connect (stream.js). Each row shows
// the rank, its last movement (previous_rank: ▲ up, ▼ down, "new" for an entry that
// has not moved since it entered the board), the portfolio, its owner's display
// name, the return, the total value and the daily change.
//
// Signed in, and owning a public portfolio, the panel also shows the ranks around it
// (/ws/around?portfolio_id=N&window=2, or /api/leaderboard/around/N?window=2).

import { FrameBatcher } from "./tickcast.js";
import { showMode, StreamFeed } from "./stream.js";

export const TOP_N = 10;
const AROUND_WINDOW = 2;

const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

function signed(text, n) {
  return n > 0 ? `+${text}` : text;
}

function percent(value) {
  const n = Number(value);
  return Number.isFinite(n) ? `${signed(n.toFixed(2), n)}%` : "—";
}

function dollars(value, withSign = false) {
  const n = Number(value);
  if (!Number.isFinite(n)) return "—";
  return withSign ? signed(money.format(n), n) : money.format(n);
}

function direction(n) {
  return n > 0 ? "up" : n < 0 ? "down" : "flat";
}

/** The last movement of an entry (from previous_rank): [class, text, label]. */
export function movement(entry) {
  const previous = entry.previous_rank;
  if (previous === null || previous === undefined) return ["new", "new", "new on the board"];
  const by = Number(previous) - Number(entry.rank);
  if (by > 0) return ["up", `▲${by}`, `up ${by} from ${previous}`];
  if (by < 0) return ["down", `▼${-by}`, `down ${-by} from ${previous}`];
  return ["flat", "–", "unchanged"];
}

/** One table of entries, repainted whole (at most a few dozen rows). */
export class EntryTable {
  constructor(tbody, empty, highlight = null) {
    this.tbody = tbody;
    this.empty = empty;
    this.highlight = highlight; // a portfolio id to mark, or null
    this.updates = 0;
  }

  paint(entries, source) {
    const rows = entries.map((entry) => this.row(entry));
    this.tbody.replaceChildren(...rows);
    this.empty.hidden = rows.length > 0;
    this.updates += 1;
    const table = this.tbody.closest("table");
    table.dataset.updates = String(this.updates);
    table.dataset.source = source;
  }

  row(entry) {
    const tr = document.createElement("tr");
    tr.dataset.portfolioId = String(entry.portfolio_id);
    tr.dataset.rank = String(entry.rank);
    if (this.highlight !== null && Number(entry.portfolio_id) === this.highlight) tr.className = "mine";
    const [moveClass, moveText, moveLabel] = movement(entry);
    const cells = [
      ["rank num", String(entry.rank)],
      [`move ${moveClass}`, moveText, moveLabel],
      ["name", entry.portfolio_name],
      ["owner muted", entry.owner_name],
      [`return num ${direction(Number(entry.return_percent))}`, percent(entry.return_percent)],
      ["total-value num", dollars(entry.total_value)],
      [`daily-change num ${direction(Number(entry.daily_change))}`, dollars(entry.daily_change, true)],
      [`daily-change-percent num ${direction(Number(entry.daily_change_percent))}`, percent(entry.daily_change_percent)],
    ];
    for (const [cls, text, label] of cells) {
      const td = document.createElement("td");
      td.className = cls;
      td.textContent = text;
      if (label) td.title = label;
      tr.append(td);
    }
    return tr;
  }
}

/** The panel: the top-performers feed, and the around-mine one when it applies. */
export class LeaderboardPanel {
  constructor(root, token = null) {
    this.root = root;
    this.token = token;
    this.badge = root.querySelector("#leaderboard-mode");
    this.top = new EntryTable(root.querySelector("#leaderboard tbody"), root.querySelector("#leaderboard-empty"));
    this.error = root.querySelector("#leaderboard-error");
    this.aroundBox = root.querySelector("#leaderboard-around");
    this.around = null;
    this.aroundFeed = null;
    // the newest payload per table, painted once per animation frame
    this.batcher = new FrameBatcher((batch) => {
      for (const [key, { entries, source }] of batch) {
        if (key === "top") this.top.paint(entries, source);
        else if (this.around) this.around.paint(entries, source);
      }
    });
    this.feed = this.topFeed(token);
  }

  topFeed(token) {
    return new StreamFeed({
      socket: `ws/top?n=${TOP_N}`,
      poll: `api/leaderboard/top?n=${TOP_N}`,
      token,
      onData: (payload, how) => {
        if (Array.isArray(payload?.data)) this.batcher.put("top", { entries: payload.data, source: how.source });
      },
      onStatus: (status) => {
        showMode(this.badge, status);
        this.error.textContent = status.mode === "closed" ? `Leaderboard unavailable: ${status.reason}` : "";
      },
    }).start();
  }

  /** New credentials (null: anonymous); forgets the around-mine view. */
  setToken(token) {
    this.token = token;
    this.showAround(null);
    this.feed.setToken(token);
  }

  /** The ranks around one of the user's public portfolios (null: hide them). */
  showAround(portfolio) {
    this.aroundFeed?.stop();
    this.aroundFeed = null;
    this.around = null;
    this.aroundBox.hidden = portfolio === null;
    if (portfolio === null) return;
    const id = Number(portfolio.id ?? portfolio.portfolio_id);
    this.aroundBox.querySelector(".around-name").textContent = portfolio.name || `Portfolio ${id}`;
    this.around = new EntryTable(
      this.aroundBox.querySelector("tbody"),
      this.aroundBox.querySelector(".around-empty"),
      id,
    );
    const badge = this.aroundBox.querySelector(".badge");
    this.aroundFeed = new StreamFeed({
      socket: `ws/around?portfolio_id=${id}&window=${AROUND_WINDOW}`,
      poll: `api/leaderboard/around/${id}?window=${AROUND_WINDOW}`,
      token: this.token,
      onData: (payload, how) => {
        if (Array.isArray(payload?.data)) this.batcher.put("around", { entries: payload.data, source: how.source });
      },
      onStatus: (status) => showMode(badge, status),
    }).start();
  }
}
