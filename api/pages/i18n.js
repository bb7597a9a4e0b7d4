// Herald pages: English and Chinese strings of the page chrome and the operator page.
// t(key, vars) picks the current language. The inbox's own strings are the
// <herald-inbox> element's (/v1/inbox.js).
"use strict";
const STRINGS = {
  en: {
    "app.sub": "Notifications",
    "embed.title": "Embed it",
    "embed.body": "This inbox is the <herald-inbox> element: two lines in any page (list its origin in HERALD_CORS_ORIGINS).",
    "dev.title": "Demo controls", "dev.body": "Development mode: pick any user; the page mints a token.",
    "dev.user": "User", "dev.switch": "Switch", "dev.sample": "Send a test notification",
    "signin.title": "Sign in to your inbox",
    "signin.body": "Paste a user token (from `herald token USER`).",
    "signin.go": "Open inbox", "signin.bad": "That token was refused: {why}",
    "lang": "中文",
    "admin.title": "Operator", "admin.key": "Service API key",
    "admin.keyBody": "The page polls /v1/admin/status with it (kept in this tab only).",
    "admin.open": "Show status", "admin.auto": "Auto-refresh", "admin.updated": "Updated {t}",
    "admin.entries": "Log entries", "admin.appended": "Appended / s", "admin.projected": "Projected / s",
    "admin.lag": "Projector lag", "admin.pending": "Pending", "admin.dead": "Dead letters",
    "admin.unowned": "Unowned partitions", "admin.live": "Live connections",
    "admin.partitions": "Partitions", "admin.groups": "Consumer groups", "admin.liveTitle": "Live push (this API process)",
    "admin.col.p": "#", "admin.col.length": "Entries", "admin.col.last": "Last position",
    "admin.col.ckpt": "Checkpoint", "admin.col.owner": "Owner", "admin.col.lease": "Lease",
    "admin.col.lag": "Lag", "admin.col.pending": "Pending", "admin.col.dead": "Dead letters",
    "admin.col.ns": "View", "admin.col.group": "Group", "admin.col.consumers": "Consumers",
    "admin.col.owned": "Owned", "admin.col.rate": "Processed / s", "admin.nobody": "nobody",
    "admin.entriesHint": "entries not yet delivered",
    "admin.error": "Could not load status: {why}", "admin.forget": "Change key",
    "live.connections": "Connections", "live.users": "{n} users",
    "live.partitions": "Partitions subscribed", "live.signals": "Change signals",
    "live.ignored": "{n} for users not here", "live.messages": "Messages sent",
    "live.refused": "Refused (limits)", "live.slow": "Closed as too slow",
    "live.resets": "Resets", "live.waiters": "Long-polls waiting",
  },
  zh: {
    "app.sub": "消息通知",
    "embed.title": "嵌入到你的页面",
    "embed.body": "这个收件箱就是 <herald-inbox> 元素：任何页面两行代码即可（把页面来源加入 HERALD_CORS_ORIGINS）。",
    "dev.title": "演示控制", "dev.body": "开发模式：可切换任意用户，页面会自动签发令牌。",
    "dev.user": "用户", "dev.switch": "切换", "dev.sample": "发送一条测试通知",
    "signin.title": "登录你的收件箱",
    "signin.body": "粘贴用户令牌（由 `herald token USER` 生成）。",
    "signin.go": "打开收件箱", "signin.bad": "令牌无效：{why}",
    "lang": "EN",
    "admin.title": "运维面板", "admin.key": "服务 API 密钥",
    "admin.keyBody": "页面用它轮询 /v1/admin/status（仅保存在当前标签页）。",
    "admin.open": "查看状态", "admin.auto": "自动刷新", "admin.updated": "更新于 {t}",
    "admin.entries": "日志条目", "admin.appended": "写入 / 秒", "admin.projected": "投影 / 秒",
    "admin.lag": "投影延迟", "admin.pending": "待确认", "admin.dead": "死信",
    "admin.unowned": "无主分区", "admin.live": "实时连接",
    "admin.partitions": "分区", "admin.groups": "消费组", "admin.liveTitle": "实时推送（本 API 进程）",
    "admin.col.p": "#", "admin.col.length": "条目", "admin.col.last": "最新位置",
    "admin.col.ckpt": "检查点", "admin.col.owner": "持有者", "admin.col.lease": "租约",
    "admin.col.lag": "延迟", "admin.col.pending": "待确认", "admin.col.dead": "死信",
    "admin.col.ns": "视图", "admin.col.group": "消费组", "admin.col.consumers": "消费者",
    "admin.col.owned": "已分配", "admin.col.rate": "处理 / 秒", "admin.nobody": "无",
    "admin.entriesHint": "尚未投递的条目",
    "admin.error": "无法加载状态：{why}", "admin.forget": "更换密钥",
    "live.connections": "连接数", "live.users": "{n} 个用户",
    "live.partitions": "已订阅分区", "live.signals": "变更信号",
    "live.ignored": "{n} 条与本进程无关", "live.messages": "已发送消息",
    "live.refused": "被拒绝（超限）", "live.slow": "因过慢被关闭",
    "live.resets": "重置次数", "live.waiters": "长轮询等待中",
  },
};

let LANG = localStorage.getItem("herald.lang") ||
  ((navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en");

function t(key, vars) {
  let text = (STRINGS[LANG] && STRINGS[LANG][key]) || STRINGS.en[key] || key;
  for (const [name, value] of Object.entries(vars || {})) text = text.replace(`{${name}}`, value);
  return text;
}

function applyI18n(root) {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  for (const el of (root || document).querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of (root || document).querySelectorAll("[data-i18n-title]")) {
    el.title = t(el.dataset.i18nTitle);
    el.setAttribute("aria-label", el.title);
  }
}

function setLang(lang) {
  LANG = lang;
  localStorage.setItem("herald.lang", lang);
  applyI18n();
}
