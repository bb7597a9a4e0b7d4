// The look of <herald-inbox> (/v1/inbox-style.js): its shadow style sheet, every colour
// and size behind a CSS custom property (--herald-*), and its icons.
"use strict";

export const ICONS = {
  bell: '<path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9"/><path d="M10.3 21a1.94 1.94 0 0 0 3.4 0"/>',
  read: '<path d="M20 6 9 17l-5-5"/>',
  unread: '<circle cx="12" cy="12" r="4"/>',
  archive: '<rect x="3" y="4" width="18" height="4" rx="1"/><path d="M5 8v11a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1V8"/><path d="M10 12h4"/>',
};
export const STYLE = `
:host { --_accent: var(--herald-accent, #4f46e5); --_bg: var(--herald-bg, #fff);
  --_fg: var(--herald-fg, #111827); --_muted: var(--herald-muted, #6b7280);
  --_border: var(--herald-border, #e5e7eb); --_unread: var(--herald-unread-bg, #f5f6ff);
  --_badge-bg: var(--herald-badge-bg, #dc2626); --_badge-fg: var(--herald-badge-fg, #fff);
  --_radius: var(--herald-radius, 12px);
  display: inline-block; position: relative; color: var(--_fg);
  font: 14px/1.5 var(--herald-font, system-ui, -apple-system, "Segoe UI", Roboto,
    "Noto Sans", "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif); }
:host([mode="inline"]) { display: block; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
button { font: inherit; color: inherit; cursor: pointer; }
:focus-visible { outline: 2px solid var(--_accent); outline-offset: 2px; }
.bell { position: relative; width: 38px; height: 38px; border-radius: 10px; display: grid;
  place-items: center; border: 1px solid var(--_border); background: var(--_bg); }
.badge { position: absolute; top: -6px; right: -6px; min-width: 20px; height: 20px;
  padding: 0 6px; border-radius: 999px; background: var(--_badge-bg); color: var(--_badge-fg);
  font-size: 11px; font-weight: 700; display: grid; place-items: center;
  border: 2px solid var(--_bg); }
.panel { width: var(--herald-panel-width, 400px); max-width: 96vw; background: var(--_bg);
  border: 1px solid var(--_border); border-radius: var(--_radius); overflow: hidden;
  box-shadow: 0 12px 32px rgba(16, 24, 40, .14); }
:host(:not([mode="inline"])) .panel { position: absolute; right: 0; top: 46px; z-index: 1000; }
:host([align="start"]) .panel { right: auto; left: 0; }
:host([mode="inline"]) .panel { width: 100%; max-width: none; box-shadow: none; }
header { display: flex; align-items: center; gap: 10px; padding: 12px 16px;
  border-bottom: 1px solid var(--_border); }
header .bell { width: 32px; height: 32px; cursor: default; }
header h2 { margin: 0; font-size: 16px; flex: 1; display: flex; align-items: center; gap: 10px; }
.state { font-size: 12px; color: var(--_muted); font-weight: 500; }
.state::before { content: ""; display: inline-block; width: 8px; height: 8px;
  border-radius: 50%; margin-right: 6px; background: #d97706; }
.state[data-state="live"]::before { background: #16a34a; }
.state[data-state="offline"]::before { background: #dc2626; }
.link { border: 0; background: none; color: var(--_accent); font-weight: 500; padding: 4px; }
.link:disabled { color: var(--_muted); cursor: default; }
[role="tablist"] { display: flex; gap: 4px; padding: 8px 12px 0; border-bottom: 1px solid var(--_border); }
[role="tab"] { border: 0; background: none; padding: 6px 10px; border-bottom: 2px solid transparent;
  color: var(--_muted); font-weight: 500; }
[role="tab"][aria-selected="true"] { color: var(--_accent); border-bottom-color: var(--_accent); }
ul { list-style: none; margin: 0; padding: 0; max-height: var(--herald-list-height, 480px);
  overflow-y: auto; }
:host([mode="inline"]) ul { max-height: none; }
.item { display: grid; grid-template-columns: 10px 1fr auto; gap: 10px; padding: 12px 16px;
  border-bottom: 1px solid var(--_border); cursor: pointer; }
.item.unread { background: var(--_unread); }
.dot { width: 8px; height: 8px; margin-top: 7px; border-radius: 50%; }
.item.unread .dot { background: var(--_accent); }
.item-title { font-weight: 500; }
.item.unread .item-title { font-weight: 650; }
.cat { font-size: 11px; padding: 0 6px; margin-left: 6px; border-radius: 999px;
  border: 1px solid var(--_border); color: var(--_muted); font-weight: 500; }
.item-body { color: var(--_muted); margin-top: 2px; overflow-wrap: anywhere; }
.item-meta { font-size: 12px; color: var(--_muted); margin-top: 2px; }
.actions { display: flex; gap: 2px; align-items: start; }
.icon-btn { width: 30px; height: 30px; border-radius: 8px; border: 1px solid transparent;
  background: transparent; display: grid; place-items: center; color: var(--_muted); }
.icon-btn:hover { border-color: var(--_border); }
.empty { padding: 40px 16px; text-align: center; color: var(--_muted); }
.empty strong { display: block; color: var(--_fg); margin-bottom: 4px; }
.more { display: block; width: 100%; border: 0; border-top: 1px solid var(--_border);
  background: none; padding: 10px; color: var(--_accent); }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
  white-space: nowrap; }
`;

export function svg(name, size = 16) {
  return `<svg width="${size}" height="${size}" viewBox="0 0 24 24" fill="none" stroke="currentColor"
    stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">${ICONS[name]}</svg>`;
}
