// Drives the apctl Cockpit page in headless Chromium for tests/tests/cockpit.rs,
// which has set up the host (apd on a private bus that plays the system bus,
// guest1 and guest2 started) and cockpit-ws with the package. Changes made
// with apctl meanwhile must show on the page without a reload; a start from
// the page must reach apd; a refusal must show apd's sentence.
//
// Environment: COCKPIT_URL (the page), CHROMIUM (the browser), APCTL and
// APCTL_BUS (apctl and apd's bus), NOBODY_URL and NOBODY_REFUSAL (the page
// served by a bridge running as nobody, and apd's sentence when nobody stops
// guest1), SCREENSHOT (where to save the PNG),
// PROFILE (a fresh browser profile directory), CARD6_CONFIG (optional:
// adapter 6's sysfs config, written instead of `apctl config 6 off`), TIMEOUT_MS (how long to wait
// for something that must appear; a liveness bound, not a speed limit).
// Prints one line per step; exits non-zero with the reason on failure.

import { execFileSync, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import puppeteer from "puppeteer-core";

const env = name => {
    const v = process.env[name];
    if (!v)
        throw new Error(`${name} is not set`);
    return v;
};
const timeout = Number(process.env.TIMEOUT_MS || 60000);
const step = text => console.log(`cockpit: ${text}`);

function apctl(...args) {
    step(`$ apctl ${args.join(" ")}`);
    return execFileSync(env("APCTL"), args, { env: process.env, encoding: "utf8" });
}

const browser = await puppeteer.launch({
    executablePath: env("CHROMIUM"),
    headless: true,
    userDataDir: env("PROFILE"),
    // Root cannot use Chromium's sandbox; the page is our own.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
    defaultViewport: { width: 1400, height: 900 },
    timeout,
});
let page;
const problems = [];
try {
    page = await browser.newPage();
    page.setDefaultTimeout(timeout);
    page.on("pageerror", e => problems.push(`page error: ${e.message}`));
    page.on("console", m => {
        if (m.type() === "error" || m.type() === "warn")
            problems.push(`console ${m.type()}: ${m.text()} ${JSON.stringify(m.stackTrace())}`);
    });

    const cell = apqn => `td[data-apqn="${apqn}"]`;
    const mdevRow = name => `tr[data-mdev="${name}"]`;
    // A click inside the page, on the element there now: the page redraws
    // what changed whenever apd signals, so a handle could go stale.
    const click = selector => page.$eval(selector, e => e.click());
    const attribute = (selector, name) =>
        page.$eval(selector, (e, n) => e.getAttribute(n), name);
    /** Waits until the element's attributes have the given values. */
    async function waitFor(selector, attributes, what) {
        try {
            await page.waitForFunction((sel, attrs) => {
                const e = document.querySelector(sel);
                return e && Object.entries(attrs).every(([k, v]) => e.getAttribute(k) === v);
            }, { polling: "mutation" }, selector, attributes);
        } catch (ex) {
            const found = await page.$eval(selector, e => e.outerHTML.slice(0, 300)).catch(() => "nothing");
            throw new Error(`${what}: waited for ${selector} with ${JSON.stringify(attributes)}, found ${found} (${ex.message})`);
        }
        step(what);
    }
    async function expectOwners(owners) {
        for (const [apqn, owner] of Object.entries(owners)) {
            const got = await attribute(cell(apqn), "data-owner");
            if (got !== owner)
                throw new Error(`cell ${apqn}: data-owner is ${got}, expected ${owner}`);
        }
    }

    // 1. The page loads and shows the host as apctl set it up.
    await page.goto(env("COCKPIT_URL"), { waitUntil: "load" });
    await waitFor("body", { "data-loaded": "true" }, "the page loaded apd's view");
    await waitFor(mdevRow("guest1"), { "data-active": "true" }, "guest1 is shown active");
    await waitFor(mdevRow("guest2"), { "data-active": "true" }, "guest2 is shown active");
    const cells = await page.$$eval("td[data-apqn]", es => es.length);
    if (cells !== 7 * 5)
        throw new Error(`the grid has ${cells} cells, expected 35 (adapters 1-7 x 5 usage domains)`);
    await expectOwners({
        "05.0004": "guest1", "05.00ab": "guest1", "06.0004": "guest1", "06.00ab": "guest1",
        "05.0047": "guest2", "05.00ff": "guest2",
        // Host drivers keep a queue whose adapter and domain bits are both
        // set in apmask and aqmask; every other queue is vfio_ap's.
        "06.0047": "free", "05.0000": "free", "01.0004": "free", "01.0000": "host", "07.0000": "host",
    });
    step("every cell has the owner apctl gave it");
    // No reload from here on: a reload would lose this mark.
    await page.evaluate(() => { window.apctlTestMark = true; });

    // 2. A change made with apctl shows live.
    apctl("stop", "guest2");
    await waitFor(mdevRow("guest2"), { "data-active": "false" }, "guest2 is shown stopped, live");
    await waitFor(cell("05.0047"), { "data-owner": "free" }, "its queues are shown free");

    // 3. An adapter configured off (a uevent) shows live: guest1 keeps its
    //    queues, which are no longer usable, and the page says why.
    if (process.env.CARD6_CONFIG) {
        // A write apd did not make: it learns it from the uevent.
        step(`$ echo 0 > ${process.env.CARD6_CONFIG}`);
        writeFileSync(process.env.CARD6_CONFIG, "0\n");
    } else {
        apctl("config", "6", "off");
    }
    await waitFor(cell("06.0004"), { "data-owner": "guest1", "data-usable": "false" },
                  "adapter 6 off: 06.0004 is shown unusable, still guest1's");
    await waitFor('tr[data-adapter="6"]', { "data-config": "false" }, "adapter 6 is shown configured off");
    await click(`${cell("06.0004")} button`);
    await page.waitForFunction(() => document.getElementById("cell-detail").textContent.includes("adapter 6 is configured off"),
                               { polling: "mutation" });
    step(`a click on 06.0004 tells: ${await page.$eval("#cell-detail", e => e.textContent)}`);

    // 4. A start from the page reaches apd.
    await click(`${mdevRow("guest2")} button[data-action="start"]`);
    await waitFor(mdevRow("guest2"), { "data-active": "true" }, "started from the page, guest2 is shown active");
    await waitFor(cell("05.0047"), { "data-owner": "guest2" }, "its queues are shown as guest2's");
    const list = JSON.parse(apctl("--json", "list"));
    const guest2 = list.find(m => m.name === "guest2");
    if (!guest2 || guest2.active !== true)
        throw new Error(`apctl --json list does not show guest2 active: ${JSON.stringify(list)}`);
    step("apctl --json list shows guest2 active");

    // 5. A refusal shows apd's sentence: guest3 wants guest2's queues.
    apctl("define", "--name", "guest3", "-a", "5", "-d", "0x47");
    await waitFor(mdevRow("guest3"), { "data-active": "false" }, "guest3, defined with apctl, shows up live");
    const refused = spawnSync(env("APCTL"), ["start", "guest3"], { env: process.env, encoding: "utf8" });
    if (refused.status !== 1)
        throw new Error(`apctl start guest3 was not refused: ${JSON.stringify(refused)}`);
    const sentence = refused.stderr.replace(/^apctl: /, "").trim();
    await click(`${mdevRow("guest3")} button[data-action="start"]`);
    await page.waitForFunction(s => document.getElementById("action-error").textContent.includes(s),
                               { polling: "mutation" }, sentence);
    step(`the page shows apd's refusal: ${sentence}`);

    if (!await page.evaluate(() => window.apctlTestMark === true))
        throw new Error("the page was reloaded");
    step("no reload happened");
    await click(`${cell("06.0004")} button`);
    await page.screenshot({ path: env("SCREENSHOT"), fullPage: true });
    step(`screenshot saved as ${env("SCREENSHOT")}`);

    // 6. An unprivileged user (a bridge running as nobody) sees the same
    //    host, and apd refuses its stop with the sentence apctl prints.
    const expected = await page.$eval("#grid", e => e.innerText);
    await page.goto(env("NOBODY_URL"), { waitUntil: "load" });
    await waitFor(mdevRow("guest2"), { "data-active": "true" }, "nobody's page shows guest2 active");
    await waitFor(cell("06.0004"), { "data-owner": "guest1", "data-usable": "false" }, "and 06.0004 guest1's, unusable");
    const seen = await page.$eval("#grid", e => e.innerText);
    if (seen !== expected)
        throw new Error(`nobody's grid differs from root's:\n${seen}\nroot's:\n${expected}`);
    step("nobody's grid is root's");
    await click(`${mdevRow("guest1")} button[data-action="stop"]`);
    const refusal = env("NOBODY_REFUSAL");
    await page.waitForFunction(s => document.getElementById("action-error").textContent.includes(s),
                               { polling: "mutation" }, refusal);
    step(`nobody's stop shows apd's refusal: ${refusal}`);
    if (await attribute(mdevRow("guest1"), "data-active") !== "true")
        throw new Error("guest1 is not shown active after the refused stop");
    if (problems.length)
        throw new Error(`the page reported errors:\n${problems.join("\n")}`);
    step("done");
} catch (ex) {
    if (page)
        await page.screenshot({ path: env("SCREENSHOT"), fullPage: true }).catch(() => {});
    console.error(`cockpit: FAILED: ${ex.message}`);
    if (problems.length)
        console.error(`cockpit: the page reported:\n${problems.join("\n")}`);
    if (page)
        console.error(`cockpit: the page's text:\n${await page.evaluate(() => document.body.innerText).catch(e => e.message)}`);
    process.exitCode = 1;
} finally {
    await browser.close();
}
