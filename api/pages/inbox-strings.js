// The words of <herald-inbox> (/v1/inbox-strings.js): English and Simplified Chinese.
// Another language: set `element.strings = {title: "…", …}` (every key below), or add
// a language here. {n} and {title} are filled in.
"use strict";

export const STRINGS = {
  en: {
    title: "Notifications", bell: "Notifications", bellUnread: "Notifications, {n} unread",
    all: "All", unread: "Unread", archived: "Archived", tabs: "Filter notifications",
    markAll: "Mark all as read", markRead: "Mark as read", markUnread: "Mark as unread",
    archive: "Archive", more: "Load more", empty: "You're all caught up",
    emptyBody: "New notifications appear here instantly.", announce: "New notification: {title}",
    unreadCount: "{n} unread", refreshed: "Notifications refreshed",
    "state.connecting": "Connecting…", "state.live": "Live", "state.reconnecting": "Reconnecting…",
    "state.offline": "Offline", error: "Something went wrong: {why}",
  },
  "zh-CN": {
    title: "通知", bell: "通知", bellUnread: "通知，{n} 条未读",
    all: "全部", unread: "未读", archived: "已归档", tabs: "筛选通知",
    markAll: "全部标为已读", markRead: "标为已读", markUnread: "标为未读",
    archive: "归档", more: "加载更多", empty: "没有新消息",
    emptyBody: "新的通知会实时出现在这里。", announce: "新通知：{title}",
    unreadCount: "{n} 条未读", refreshed: "通知已刷新",
    "state.connecting": "连接中…", "state.live": "实时", "state.reconnecting": "重新连接中…",
    "state.offline": "已断开", error: "出错了：{why}",
  },
};
