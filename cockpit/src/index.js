// The Cockpit page of apctl: apd's view of the host, read over D-Bus
// (org.apctl.Apd1 on the system bus) and re-read whenever apd signals a
// change; start/stop an mdev and configure an adapter on/off, apd decides.

import "@patternfly/patternfly/patternfly-base.css";
import "@patternfly/patternfly/components/Alert/alert.css";
import "@patternfly/patternfly/components/Button/button.css";
import "@patternfly/patternfly/components/Card/card.css";
import "@patternfly/patternfly/components/DescriptionList/description-list.css";
import "@patternfly/patternfly/components/Label/label.css";
import "@patternfly/patternfly/components/Page/page.css";
import "@patternfly/patternfly/components/Table/table.css";
import "@patternfly/patternfly/components/Title/title.css";
import "./apctl.css";

import {
    adapterList, buildGrid, domainList, listOrder, mdevLabel, ownerAttribute, ownerText, symbol,
} from "./model.js";

const cockpit = window.cockpit;

const SERVICE = "org.apctl.Apd1";
const ROOT = "/org/apctl/Apd1";
const MANAGER = "org.apctl.Apd1.Manager";
const HOST = "org.apctl.Apd1.Host";
const MDEV = "org.apctl.Apd1.Mdev";

const client = cockpit.dbus(SERVICE, { bus: "system", superuser: "try" });

/** `element(tag, {attributes}, children...)`: a DOM element; strings become text. */
function element(tag, attributes = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attributes)) {
        if (k.startsWith("on"))
            e.addEventListener(k.slice(2), v);
        else if (v !== undefined && v !== null && v !== false)
            e.setAttribute(k, v === true ? "" : String(v));
    }
    e.append(...children.flat().filter(c => c !== null && c !== undefined));
    return e;
}

const label = (text, color) =>
    element("span", { class: `pf-v5-c-label pf-m-compact pf-m-${color}` },
            element("span", { class: "pf-v5-c-label__content" }, text));

function alert(variant, title, description, onClose) {
    return element("div", { class: `pf-v5-c-alert pf-m-inline pf-m-${variant}`, role: "alert" },
                   element("p", { class: "pf-v5-c-alert__title" }, title),
                   description ? element("div", { class: "pf-v5-c-alert__description" }, element("p", {}, description)) : null,
                   onClose
                       ? element("div", { class: "pf-v5-c-alert__action" },
                                 element("button", { class: "pf-v5-c-button pf-m-plain", type: "button", "aria-label": "Close", onclick: onClose }, "×"))
                       : null);
}

function table(columns, rows) {
    return element("table", { class: "pf-v5-c-table pf-m-compact pf-m-grid-lg", role: "grid" },
                   element("thead", { class: "pf-v5-c-table__thead" },
                           element("tr", { class: "pf-v5-c-table__tr" },
                                   columns.map(c => element("th", { class: "pf-v5-c-table__th pf-m-wrap", scope: "col" }, c)))),
                   element("tbody", { class: "pf-v5-c-table__tbody" }, rows));
}

const td = (label, ...content) => element("td", { class: "pf-v5-c-table__td", "data-label": label }, ...content);

function descriptionList(pairs) {
    return element("dl", { class: "pf-v5-c-description-list pf-m-horizontal pf-m-compact" },
                   pairs.map(([term, value]) =>
                       element("div", { class: "pf-v5-c-description-list__group" },
                               element("dt", { class: "pf-v5-c-description-list__term" },
                                       element("span", { class: "pf-v5-c-description-list__text" }, term)),
                               element("dd", { class: "pf-v5-c-description-list__description" },
                                       element("div", { class: "pf-v5-c-description-list__text" }, value)))));
}

function replace(id, ...content) {
    document.getElementById(id).replaceChildren(...content);
}

// Reading apd

/** A D-Bus call; resolves with the reply's arguments. */
const call = (path, iface, method, args = [], type) =>
    client.call(path, iface, method, args, type === undefined ? {} : { type });

/** The plain value of every property of one interface in a{sv}. */
function values(props) {
    return Object.fromEntries(Object.entries(props || {}).map(([k, v]) => [k, v.v]));
}

const mdevFromProps = p => ({
    uuid: p.Uuid.toLowerCase(),
    name: p.Name,
    defined: p.Defined,
    active: p.Active,
    autostart: p.Autostart,
    adapters: p.Adapters,
    domains: p.Domains,
    controlDomains: p.ControlDomains,
    guestMatrix: p.GuestMatrix,
    startError: p.StartError,
});

const adapterFrom = ([id, cardType, mode, config, online, chkstop]) =>
    ({ id, cardType, mode, config, online, chkstop });

const queueFrom = ([apqn, cardType, mode, config, online, chkstop, driver, owner, ownerUuid, ownerName]) =>
    ({ apqn, cardType, mode, config, online, chkstop, driver, owner, ownerUuid, ownerName });

const statusFrom = ([version, backend, vfioApLoaded, apmask, aqmask, persistentApmask, persistentAqmask,
    adapters, queues, queuesHost, queuesFree, queuesAssigned, defined, active, loadErrors, startFailures]) =>
    ({
        version, backend, vfioApLoaded, apmask, aqmask, persistentApmask, persistentAqmask,
        adapters, queues, queuesHost, queuesFree, queuesAssigned, defined, active, loadErrors, startFailures,
    });

/** Everything the page shows, read from apd at once. */
async function read() {
    const [[objects], [hostProps], [queues], status] = await Promise.all([
        call(ROOT, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"),
        call(ROOT, "org.freedesktop.DBus.Properties", "GetAll", [HOST], "s"),
        call(ROOT, MANAGER, "ListQueues"),
        call(ROOT, MANAGER, "GetStatus"),
    ]);
    const mdevs = Object.values(objects)
            .filter(ifaces => MDEV in ifaces)
            .map(ifaces => mdevFromProps(values(ifaces[MDEV])))
            .sort(listOrder);
    // Whether a guest can use a queue is apd's verdict, as in `apctl show`.
    const verdicts = new Map(await Promise.all(mdevs.filter(m => m.active).map(async m => {
        try {
            const [, apqns] = await call(ROOT, MANAGER, "GetMdev", [m.uuid], "s");
            return [m.uuid, apqns.map(([apqn, inGuestMatrix, usable, reason]) => ({ apqn, inGuestMatrix, usable, reason }))];
        } catch (ex) {
            // Gone meanwhile: its removal signals another read.
            return [m.uuid, []];
        }
    })));
    const host = values(hostProps);
    return {
        mdevs,
        verdicts,
        host,
        adapters: host.Adapters.map(adapterFrom),
        queues: queues.map(queueFrom),
        // The introspection says one struct; zbus sends its fields as the
        // reply's arguments. Either reads the same.
        status: statusFrom(status.length === 1 ? status[0] : status),
    };
}

// Changing the host: apd authorizes and explains a refusal.

async function act(button, what, method, args, type) {
    button.disabled = true;
    replace("action-error");
    try {
        await call(ROOT, MANAGER, method, args, type);
    } catch (ex) {
        replace("action-error", alert("danger", `Could not ${what}`, ex.message, () => replace("action-error")));
    } finally {
        button.disabled = false;
    }
}

// Drawing

let selected = null;
let shown = null;

function cellText(state, c) {
    const owner = ownerText(c.owner, state.mdevs);
    const others = c.collidesWith.map(o => ownerText(o, state.mdevs));
    const who = others.length ? [owner, ...others].join(" and ") : owner;
    const usable = c.usable ? "usable" : `not usable: ${c.reason}`;
    return `APQN ${c.apqn} (adapter ${c.adapter}, domain 0x${c.domain.toString(16).padStart(2, "0")}): ${who}; ${usable}`;
}

function showDetail(text) {
    document.getElementById("cell-detail").textContent = text;
}

/** Whether an mdev owns a cell of the grid, alone or colliding. */
const shows = (grid, uuid) => grid.rows.some(r => r.cells.some(c =>
    [c.owner, ...c.collidesWith].some(o => o.kind === "mdev" && o.uuid === uuid)));

function drawGrid(state) {
    const grid = buildGrid(state);
    if (grid.rows.length === 0 || grid.domains.length === 0) {
        replace("grid", element("p", {}, "No queue to show: the LPAR has no adapter or no usage domain."));
        replace("legend");
        return;
    }
    const header = element("tr", {},
                           element("th", { scope: "col" }, "Adapter"),
                           grid.domains.map(d => element("th", { scope: "col", class: "apctl-domain" }, d.toString(16).padStart(2, "0"))));
    const rows = grid.rows.map(row => {
        const a = row.adapter;
        const condition = !a.config ? " off" : a.chkstop ? " chkstop" : "";
        return element("tr", {},
                       element("th", { scope: "row", class: "apctl-adapter" }, `${a.id} ${a.cardType}${condition}`),
                       row.cells.map(c => {
                           const text = cellText(state, c);
                           const classes = ["apctl-cell", `apctl-owner-${c.owner.kind}`];
                           if (c.collidesWith.length)
                               classes.push("apctl-collision");
                           if (!c.usable && c.owner.kind !== "none")
                               classes.push("apctl-unusable");
                           if (c.apqn === selected)
                               classes.push("apctl-selected");
                           const sym = symbol(grid, c);
                           return element("td", {
                               class: classes.join(" "),
                               "data-apqn": c.apqn,
                               "data-owner": ownerAttribute(c, state.mdevs),
                               "data-usable": String(c.usable),
                               title: text,
                           }, element("button", {
                               type: "button",
                               "aria-label": text,
                               onmouseenter: () => showDetail(text),
                               onfocus: () => showDetail(text),
                               onclick: () => {
                                   selected = c.apqn;
                                   draw(state);
                               },
                           }, c.usable || c.owner.kind === "none" ? sym : `${sym}!`));
                       }));
    });
    replace("grid", element("table", { class: "apctl-grid" }, element("thead", {}, header), element("tbody", {}, rows)));
    const picked = grid.rows.flatMap(r => r.cells).find(c => c.apqn === selected);
    if (picked)
        showDetail(cellText(state, picked));
    replace("legend",
            element("p", { class: "apctl-legend-keys" },
                    "Rows: adapters (decimal). Columns: usage domains (hex). ",
                    element("b", {}, "H"), " host  ", element("b", {}, "."), " free for vfio_ap  ",
                    element("b", {}, "*"), " two owners at once (another tool wrote)  ",
                    element("span", { class: "apctl-unusable-key" }, "red, !"), " not usable (adapter off or check-stopped, queue not bound)"),
            grid.legend.length
                ? element("ul", { class: "apctl-legend" }, grid.legend.map(({ letter, mdev }) =>
                    element("li", {}, element("b", {}, letter), ` ${mdev.name || "-"} `, element("code", {}, mdev.uuid),
                            shows(grid, mdev.uuid) ? null : " (no queue in this grid)")))
                : null);
}

function whyNotUsable(state, m) {
    if (!m.active)
        return m.startError || "not active";
    const reasons = [...new Set((state.verdicts.get(m.uuid) || []).filter(v => !v.usable).map(v => v.reason))];
    return reasons.length ? reasons.join(" ") : "-";
}

function drawMdevs(state) {
    if (state.mdevs.length === 0) {
        replace("mdevs", element("p", {}, "No mdevs. Define one with: apctl define --name NAME -a LIST -d LIST"));
        return;
    }
    const rows = state.mdevs.map(m => {
        const button = m.active
            ? element("button", { class: "pf-v5-c-button pf-m-secondary pf-m-small", type: "button", "data-action": "stop" }, "Stop")
            : element("button", { class: "pf-v5-c-button pf-m-primary pf-m-small", type: "button", "data-action": "start" }, "Start");
        button.addEventListener("click", () => m.active
            ? act(button, `stop ${mdevLabel(m)}`, "Stop", [m.uuid], "s")
            : act(button, `start ${mdevLabel(m)}`, "Start", [m.uuid], "s"));
        return element("tr", { class: "pf-v5-c-table__tr", "data-mdev": mdevLabel(m), "data-active": String(m.active) },
                       td("Name", m.name || "-"),
                       td("UUID", element("code", {}, m.uuid)),
                       td("Active", m.active ? label("active", "green") : label("inactive", "grey")),
                       td("Autostart", m.autostart ? "yes" : "no"),
                       td("Adapters", adapterList(m.adapters)),
                       td("Domains", domainList(m.domains)),
                       td("Control domains", domainList(m.controlDomains)),
                       td("Guest matrix", m.guestMatrix.length ? m.guestMatrix.join(" ") : "-"),
                       td("Why not usable", whyNotUsable(state, m)),
                       td("", button));
    });
    replace("mdevs", table(["Name", "UUID", "Active", "Autostart", "Adapters", "Domains", "Control domains",
        "Guest matrix", "Why not usable", ""], rows));
}

function drawAdapters(state) {
    const rows = [...state.adapters].sort((a, b) => a.id - b.id).map(a => {
        const button = element("button", { class: "pf-v5-c-button pf-m-secondary pf-m-small", type: "button", "data-action": a.config ? "off" : "on" },
                               a.config ? "Configure off" : "Configure on");
        button.addEventListener("click", () =>
            act(button, `configure adapter ${a.id} ${a.config ? "off" : "on"}`, "ConfigureAdapter", [a.id, !a.config], "ub"));
        return element("tr", { class: "pf-v5-c-table__tr", "data-adapter": a.id, "data-config": String(a.config) },
                       td("Adapter", String(a.id)),
                       td("Type", a.cardType),
                       td("Mode", a.mode),
                       td("Configured", a.config ? label("on", "green") : label("off (standby)", "red")),
                       td("Online", a.online ? "yes" : "no"),
                       td("Check-stopped", a.chkstop ? label("check-stopped", "red") : "no"),
                       td("", button));
    });
    replace("adapters", table(["Adapter", "Type", "Mode", "Configured", "Online", "Check-stopped", ""], rows));
}

function drawHost(state) {
    const s = state.status;
    const mask = text => element("code", { class: "apctl-mask" }, text || "none");
    const list = (items, show) => items.length ? element("ul", {}, items.map(i => element("li", {}, show(i)))) : "none";
    replace("host", descriptionList([
        ["apmask", mask(state.host.ApMask)],
        ["aqmask", mask(state.host.AqMask)],
        ["Persistent apmask", mask(state.host.PersistentApMask)],
        ["Persistent aqmask", mask(state.host.PersistentAqMask)],
        ["vfio_ap", state.host.VfioApLoaded ? "loaded" : "not loaded (the matrix device is missing)"],
        ["apd", `${s.version} on ${s.backend}`],
        ["Queues", `${s.queues}: ${s.queuesHost} host, ${s.queuesFree} free, ${s.queuesAssigned} in mdevs (${s.adapters} adapters)`],
        ["Mdevs", `${s.defined} defined, ${s.active} active`],
        ["Definitions that did not load", list(s.loadErrors, ([path, why]) => `${path}: ${why}`)],
        ["Starts that failed", list(s.startFailures, ([uuid, name, why]) => `${name || uuid}: ${why}`)],
    ]));
}

/** What was drawn last, to leave the page alone when a read changed nothing. */
let drawnKey = null;

function draw(state) {
    shown = state;
    const key = JSON.stringify({ ...state, verdicts: [...state.verdicts], selected });
    if (key === drawnKey)
        return;
    drawnKey = key;
    drawGrid(state);
    drawMdevs(state);
    drawAdapters(state);
    drawHost(state);
    document.body.setAttribute("data-loaded", "true");
}

// Following apd: every signal of its objects (PropertiesChanged,
// InterfacesAdded/Removed, Event) asks for one fresh read; signals that
// arrive during a read ask for one more after it.

let reading = null;
let again = false;

function refresh() {
    if (reading) {
        again = true;
        return;
    }
    reading = read()
            .then(state => {
                replace("problem");
                draw(state);
            })
            .catch(ex => {
                console.warn("apctl: cannot read apd's view:", ex);
                replace("problem", alert("warning", "apd is not reachable",
                                         `${ex.message || ex.problem || ex}. The page shows apd's view again as soon as apd answers.`));
            })
            .finally(() => {
                reading = null;
                if (again) {
                    again = false;
                    refresh();
                }
            });
}

client.subscribe({ path_namespace: ROOT }, refresh);
client.addEventListener("owner", refresh);
document.addEventListener("keydown", ev => {
    if (ev.key === "Escape" && selected !== null && shown) {
        selected = null;
        draw(shown);
    }
});
refresh();
