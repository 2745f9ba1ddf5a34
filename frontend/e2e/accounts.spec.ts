import { expect, test, type Page } from "@playwright/test";
import { CORPUS_PDF, accountMenu, newAccount, register, signIn } from "./helpers";

/** The uploaded invoice's row button (its title comes from the file name). */
const OPEN_INVOICE = /^Open fin.aws.invoice.2014/;

async function switchTo(page: Page, username: string) {
  await accountMenu(page).click();
  await page.getByLabel("Other accounts in this browser").selectOption({ label: username });
  await page.getByRole("button", { name: "Switch account" }).click();
  await expect(accountMenu(page)).toContainText(username);
}

async function openSection(page: Page, name: "Documents" | "History") {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name }).click();
  await expect(page.getByRole("heading", { level: 1, name })).toBeVisible();
}

test("two accounts in one browser: switch between them, each sees only its own data", async ({ page, browser }) => {
  test.setTimeout(240_000);
  const a = newAccount("acca");
  const b = newAccount("accb");
  const question = `Who is ${b.username}?`;

  // B exists already (registered elsewhere); A registers here and uploads a PDF.
  const elsewhere = await browser.newContext();
  await register(await elsewhere.newPage(), b);
  await elsewhere.close();

  await register(page, a);
  await page.getByLabel("PDF files").setInputFiles(CORPUS_PDF);
  await page.getByRole("button", { name: "Upload" }).click();
  await expect(page.getByRole("button", { name: OPEN_INVOICE })).toBeVisible();

  // Add B from the account menu; B becomes current, A stays held.
  await accountMenu(page).click();
  await page.getByRole("link", { name: "Add another account" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Sign in to another account" })).toBeVisible();
  await signIn(page, b, false);
  await expect(page).toHaveURL(/\/documents\/$/);
  await expect(accountMenu(page)).toContainText(b.username);
  await expect(page.getByText("No documents yet")).toBeVisible();

  // B asks a question (B has no documents: the answer says so).
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Ask" }).click();
  await page.getByLabel("Question").fill(question);
  await page.getByRole("button", { name: "Ask" }).click();
  await expect(page.getByRole("button", { name: "Ask" })).toBeEnabled({ timeout: 120_000 });
  await openSection(page, "History");
  await expect(page.getByRole("heading", { level: 2, name: question })).toBeVisible();

  // Switch to A, on the history page: A has no questions.
  await switchTo(page, a.username);
  await expect(page.getByText("No questions yet.")).toBeVisible();
  await expect(page.getByText(question)).toHaveCount(0);
  await openSection(page, "Documents");
  await expect(page.getByRole("button", { name: OPEN_INVOICE })).toBeVisible();

  // Back to B, on the documents page: none of A's.
  await switchTo(page, b.username);
  await expect(page.getByText("No documents yet")).toBeVisible();
  await expect(page.getByRole("button", { name: OPEN_INVOICE })).toHaveCount(0);
  await openSection(page, "History");
  await expect(page.getByRole("heading", { level: 2, name: question })).toBeVisible();

  // After a reload both accounts are still held and B is current.
  await page.reload();
  await expect(accountMenu(page)).toContainText(b.username);
  await accountMenu(page).click();
  const held = page.getByLabel("Other accounts in this browser").locator("option");
  await expect(held).toHaveCount(1);
  await expect(held).toHaveText(a.username);

  // Signing out of B leaves A signed in.
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await expect(accountMenu(page)).toContainText(a.username);
  await expect(page).toHaveURL(/\/documents\/$/);
  await expect(page.getByRole("button", { name: OPEN_INVOICE })).toBeVisible();

  // A's document: download it, then delete it (after confirming).
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: /^Download fin.aws.invoice.2014/ }).click();
  expect((await download).suggestedFilename()).toBe("fin_aws_invoice_2014.pdf");
  page.once("dialog", (dialog) => void dialog.accept());
  await page.getByRole("button", { name: /^Delete fin.aws.invoice.2014/ }).click();
  await expect(page.getByText("No documents yet")).toBeVisible();
});
