import { expect, test } from "@playwright/test";
import { CORPUS_PDF, expectAccessible, newAccount, register, screenshotBoth } from "./helpers";

const QUESTION = "What is the AWS invoice number?";
const ANSWER = "42183017";

// Upload → indexed (no reload) → search → streamed, cited answer → the PDF at its page.
test("upload a PDF, see it indexed, search it, ask it and open the cited page", async ({ page, context }) => {
  test.setTimeout(300_000);
  await register(page, newAccount("docs"));

  // A marker on the window: it survives only if the page never reloads.
  await page.evaluate(() => ((window as unknown as { __noReload: boolean }).__noReload = true));

  await page.getByLabel("PDF files").setInputFiles(CORPUS_PDF);
  await page.getByRole("button", { name: "Upload" }).click();
  await expect(page.getByRole("list", { name: "Uploads" })).toContainText("uploaded");

  const row = page.getByRole("row").filter({ has: page.getByRole("button", { name: /^Open / }) });
  await expect(row).toHaveCount(1);
  await expect(row.locator(".badge")).toHaveText("indexed", { timeout: 120_000 });
  expect(await page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload)).toBe(true);
  // Pages and chunks are filled in once indexed.
  const cells = row.getByRole("cell");
  await expect(cells.nth(3)).toHaveText(/^\d+$/);
  await expect(cells.nth(4)).toHaveText(/^\d+$/);
  await expectAccessible(page, "documents with an indexed PDF");
  await screenshotBoth(page, "documents-indexed");

  // Search for one of its facts.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Search" }).click();
  await expect(page).toHaveURL(/\/search\/$/);
  await page.getByLabel("Search your documents").fill("invoice number");
  await page.getByRole("button", { name: "Search" }).click();
  const hits = page.getByRole("main").getByRole("listitem");
  await expect(hits.first()).toBeVisible();
  await expect(page.getByRole("status").filter({ hasText: /results? in \d+ ms/ })).toBeVisible();
  await expect(hits.filter({ hasText: ANSWER }).first()).toBeVisible();
  await expect(hits.first().locator(".snippet b").first()).toBeVisible();
  await expect(hits.first().getByRole("link", { name: /page \d+/ })).toBeVisible();
  await expectAccessible(page, "search results");
  await screenshotBoth(page, "search-results");

  // Ask, and watch the answer arrive piece by piece.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Ask" }).click();
  await expect(page).toHaveURL(/\/ask\/$/);
  await page.evaluate(() => {
    const seen: { length: number; busy: boolean }[] = [];
    (window as unknown as { __answerLengths: typeof seen }).__answerLengths = seen;
    new MutationObserver(() => {
      const answer = document.querySelector(".answer");
      if (!answer) return;
      const length = answer.textContent?.length ?? 0;
      const busy = document.querySelector("section[aria-labelledby='answer-heading']")?.getAttribute("aria-busy") === "true";
      if (!seen.length || seen[seen.length - 1].length !== length) seen.push({ length, busy });
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  await page.getByLabel("Question").fill(QUESTION);
  await page.getByRole("button", { name: "Ask" }).click();
  await expect(page.getByRole("status").filter({ hasText: /Searching|Answering/ })).toBeVisible();
  const answer = page.locator(".answer");
  await expect(answer).toContainText(ANSWER, { timeout: 180_000 });
  await expect(page.getByRole("status").filter({ hasText: "Answered." })).toBeVisible({ timeout: 180_000 });

  const lengths = await page.evaluate(() => (window as unknown as { __answerLengths: { length: number; busy: boolean }[] }).__answerLengths);
  // At least two different partial texts were on screen before the answer was done.
  const whileStreaming = new Set(lengths.filter((l) => l.busy && l.length > 0).map((l) => l.length));
  expect(whileStreaming.size, `answer lengths seen while streaming: ${JSON.stringify(lengths)}`).toBeGreaterThanOrEqual(2);
  await expectAccessible(page, "a cited answer");
  await screenshotBoth(page, "ask-answer");

  // The answer cites a source; its [n] opens the PDF at that source's page.
  const citation = answer.getByRole("link", { name: /^Open source \d+: / }).first();
  await expect(citation).toHaveText(/^\[\d+\]$/);
  const n = Number((await citation.textContent())!.replace(/\D/g, ""));
  const source = page.getByRole("region", { name: "Sources" }).getByRole("listitem").filter({ hasText: `[${n}]` });
  const sourceLink = source.getByRole("link");
  const page_ = Number(/page (\d+)/.exec((await sourceLink.getAttribute("aria-label")) ?? "")?.[1]);
  expect(page_).toBeGreaterThan(0);

  // The app fetches the PDF with its token and opens an object URL of it:
  // record the blobs it makes (their type and first bytes).
  await page.evaluate(() => {
    const made: Promise<{ url: string; type: string; magic: string }>[] = [];
    (window as unknown as { __blobs: typeof made }).__blobs = made;
    const create = URL.createObjectURL.bind(URL);
    URL.createObjectURL = (object: Blob | MediaSource) => {
      const url = create(object);
      if (object instanceof Blob) {
        made.push(object.slice(0, 5).text().then((magic) => ({ url, type: object.type, magic })));
      }
      return url;
    };
  });
  const opened = context.waitForEvent("page");
  await citation.click();
  const tab = await opened;
  await expect.poll(() => tab.url(), { timeout: 30_000 }).toMatch(new RegExp(`^blob:.*#page=${page_}$`));
  const blobs = await page.evaluate(() => Promise.all((window as unknown as { __blobs: Promise<{ url: string; type: string; magic: string }>[] }).__blobs));
  expect(blobs).toEqual([{ url: tab.url().split("#")[0], type: "application/pdf", magic: "%PDF-" }]);
});
