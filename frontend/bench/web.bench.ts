// `make bench-web`: what the web app costs on top of the API.
//  1. JS shipped per route on a first load (empty cache), compressed as sent.
//  2. Time to interactive of the ask page on loopback, cold and warm cache.
//  3. Pressing "Ask" to the first token on screen, against the API's own
//     time to first token (SSE, first `delta`) measured in the same run.
import { expect, test, type Browser, type BrowserContext } from "@playwright/test";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { CORPUS_PDF, newAccount, type Account } from "../e2e/helpers";

const ROUTES = [
  "/", "/auth/login/", "/auth/register/", "/auth/logout/", "/profile/", "/profile/settings/",
  "/profile/security/", "/documents/", "/search/", "/ask/", "/history/", "/admin/",
];
const QUESTION = "What is the AWS invoice number?";
const RUNS = Number(process.env.BENCH_WEB_RUNS ?? 7);
const BUDGET_KB = 200;
const BASE = process.env.PAI_URL ?? "http://127.0.0.1:8000";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const kb = (bytes: number) => (bytes / 1024).toFixed(1);

async function api(pathname: string, init: RequestInit & { token?: string } = {}) {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("Authorization", `Bearer ${init.token}`);
  const response = await fetch(`${BASE}/api${pathname}`, { ...init, headers });
  if (!response.ok) throw new Error(`${pathname}: ${response.status} ${await response.text()}`);
  return response;
}

/** The API's own time to first token: POST to the first `delta` event,
 *  and the server's `first_token_ms` of that answer. */
async function apiFirstToken(token: string): Promise<[number, number]> {
  const start = performance.now();
  const response = await api("/queries", {
    method: "POST", token,
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify({ query: QUESTION }),
  });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let seen = "";
  let first = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += decoder.decode(value, { stream: true });
    // The first delta with text, as the page needs text to show.
    if (!first && firstDeltaText(seen)) first = performance.now() - start;
    if (seen.includes("event: done")) break;
  }
  if (!first) throw new Error(`no delta in the answer: ${seen.slice(0, 400)}`);
  return [first, serverFirstToken(seen)];
}

/** `timings.first_token_ms` of the `done` event. */
function serverFirstToken(sse: string): number {
  const done = sse.split("\n\n").find((event) => event.split("\n").includes("event: done"));
  const data = done?.split("\n").find((l) => l.startsWith("data: "));
  return data ? Number(JSON.parse(data.slice(6)).timings.first_token_ms) : NaN;
}

/** Whether the SSE text so far holds a `delta` event with non-empty text. */
function firstDeltaText(sse: string): boolean {
  return sse.split("\n\n").some((event) => {
    const lines = event.split("\n");
    if (!lines.includes("event: delta")) return false;
    const data = lines.find((l) => l.startsWith("data: "));
    try {
      return Boolean(data && JSON.parse(data.slice(6)).text);
    } catch {
      return false;
    }
  });
}

/** Records, in the page, when the Ask button appears and when the answer's first text does. */
const PROBE = () => {
  const w = window as unknown as Record<string, number | null>;
  w.__askReady = null;
  w.__clicked = null;
  w.__firstText = null;
  document.addEventListener("click", (e) => {
    const b = (e.target as Element | null)?.closest("button");
    if (b && b.textContent === "Ask") { w.__clicked = performance.now(); w.__firstText = null; }
  }, true);
  new MutationObserver(() => {
    if (w.__askReady === null) {
      const b = [...document.querySelectorAll("button")].find((x) => x.textContent === "Ask");
      if (b) w.__askReady = performance.now();
    }
    if (w.__clicked !== null && w.__firstText === null) {
      const answer = document.querySelector(".answer");
      if (answer && answer.textContent) w.__firstText = performance.now();
    }
  }).observe(document, { subtree: true, childList: true, characterData: true });
};

/** A fresh browser context (empty cache) signed in through the API in
 *  cookie mode, as the sign-in form does: each context holds its own
 *  session, since refresh tokens rotate and cannot be shared. */
async function signedInContext(browser: Browser, account: Account): Promise<BrowserContext> {
  const context = await browser.newContext();
  await context.addInitScript(PROBE);
  const login = await context.request.post(`${BASE}/api/auth/login`, {
    data: { email: account.email, password: account.password },
    headers: { "X-Pai-Token-Mode": "cookie" },
  });
  expect(login.status(), await login.text()).toBe(200);
  return context;
}

const READY = { timeout: 60_000 };

test("web app: JS per route, ask page TTI, Ask to first token on screen", async ({ browser }) => {
  // A user with the corpus PDF indexed, signed in once; its cookies reused.
  const account = newAccount("bench");
  const registered = await (await api("/auth/register", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(account),
  })).json();
  const token: string = registered.access_token;
  const form = new FormData();
  form.set("file", new Blob([readFileSync(CORPUS_PDF)], { type: "application/pdf" }), path.basename(CORPUS_PDF));
  const doc = await (await api("/documents", { method: "POST", token, body: form })).json();
  await expect.poll(async () => (await (await api(`/documents/${doc.id}`, { token })).json()).status,
    { timeout: 120_000 }).toBe("indexed");

  // 1. JS per route, first load: a fresh context has an empty cache.
  const routes: { route: string; gz: number; raw: number; files: number }[] = [];
  for (const route of ROUTES) {
    const context = await signedInContext(browser, account);
    const page = await context.newPage();
    const scripts: Promise<[number, number]>[] = [];
    page.on("response", (response) => {
      if (response.request().resourceType() !== "script") return;
      scripts.push(Promise.all([
        response.request().sizes().then((s) => s.responseBodySize),
        response.body().then((b) => b.length),
      ]));
    });
    await page.goto(route, { waitUntil: "networkidle" });
    const sizes = await Promise.all(scripts);
    routes.push({
      route, files: sizes.length,
      gz: sizes.reduce((n, [gz]) => n + gz, 0), raw: sizes.reduce((n, [, raw]) => n + raw, 0),
    });
    await context.close();
  }

  // 2. Ask page, navigation start to the Ask button rendered (after the
  // session is restored from its cookie): cold = fresh context, warm = reload.
  const cold: number[] = [];
  const warm: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const context = await signedInContext(browser, account);
    const page = await context.newPage();
    await page.goto("/ask/");
    await page.waitForFunction(() => (window as unknown as { __askReady: number | null }).__askReady !== null, null, READY);
    cold.push(await page.evaluate(() => (window as unknown as { __askReady: number }).__askReady));
    await page.reload();
    await page.waitForFunction(() => (window as unknown as { __askReady: number | null }).__askReady !== null, null, READY);
    warm.push(await page.evaluate(() => (window as unknown as { __askReady: number }).__askReady));
    await context.close();
  }

  // 3. Ask: browser (click to first answer text painted in the DOM) and
  // API (request to first delta), alternating so both meet the same load.
  const context = await signedInContext(browser, account);
  const page = await context.newPage();
  await page.goto("/ask/");
  await page.getByLabel("Question").fill(QUESTION);
  const screen: number[] = [];
  const direct: number[] = [];
  // Server-side first-token times of the same answers: generation shares
  // the two cores with the browser, so the fair measure of the web app's
  // own cost is each side's time beyond its answer's server time.
  const screenServer: number[] = [];
  const directServer: number[] = [];
  const record = (into: number[], server: number[], [client, ttft]: [number, number]) => {
    into.push(client);
    server.push(ttft);
  };
  const onScreen = async () => {
    await page.getByRole("button", { name: "Ask" }).click();
    await expect(page.getByRole("status")).toContainText("Answered.", { timeout: 120_000 });
    const shown = await page.evaluate(() => {
      const w = window as unknown as { __clicked: number; __firstText: number };
      return w.__firstText - w.__clicked;
    });
    // The page prints the server's own first-token time of the answer.
    const line = await page.getByText(/First token after \d+ ms/).textContent();
    return [shown, Number(/First token after (\d+) ms/.exec(line ?? "")?.[1])] as [number, number];
  };
  // Each ask starts on an idle server (the previous answer's bookkeeping
  // done), and the two take turns going first.
  const settle = () => new Promise((resolve) => setTimeout(resolve, 1000));
  for (let i = 0; i < RUNS; i++) {
    if (i % 2 === 0) {
      record(direct, directServer, await apiFirstToken(token));
      await settle();
      record(screen, screenServer, await onScreen());
    } else {
      record(screen, screenServer, await onScreen());
      await settle();
      record(direct, directServer, await apiFirstToken(token));
    }
    await settle();
  }
  await context.close();

  const beyond = (client: number[], server: number[]) => client.map((c, i) => c - server[i]);
  const screenBeyond = beyond(screen, screenServer);
  const directBeyond = beyond(direct, directServer);
  const lines = [
    `web bench: ${BASE}, ${RUNS} runs each, Debian chromium headless`,
    "",
    "route               scripts   JS gzip kB   JS raw kB   (budget 200 kB gzip)",
    ...routes.map((r) => `${r.route.padEnd(20)}${String(r.files).padStart(7)}${kb(r.gz).padStart(13)}${kb(r.raw).padStart(12)}   ${r.gz / 1024 <= BUDGET_KB ? "ok" : "OVER"}`),
    "",
    `ask page time to interactive p50: cold ${median(cold).toFixed(0)} ms, warm ${median(warm).toFixed(0)} ms (max ${Math.max(...cold).toFixed(0)} / ${Math.max(...warm).toFixed(0)})`,
    `Ask -> first token on screen p50 ${median(screen).toFixed(0)} ms; API first token p50 ${median(direct).toFixed(0)} ms; difference ${(median(screen) - median(direct)).toFixed(0)} ms (target <= 50 ms)`,
    `  beyond the server's own first token (same answers): screen p50 ${median(screenBeyond).toFixed(0)} ms, API p50 ${median(directBeyond).toFixed(0)} ms; difference ${(median(screenBeyond) - median(directBeyond)).toFixed(0)} ms`,
    `  server first token p50: browser's asks ${median(screenServer).toFixed(0)} ms, API's asks ${median(directServer).toFixed(0)} ms`,
    `  screen: ${screen.map((x) => x.toFixed(0)).join(" ")}`,
    `  api:    ${direct.map((x) => x.toFixed(0)).join(" ")}`,
  ];
  console.log(lines.join("\n"));
  const out = process.env.BENCH_WEB_OUT;
  if (out) {
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, lines.join("\n") + "\n");
  }
});
