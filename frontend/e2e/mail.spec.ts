import { expect, test } from "@playwright/test";
import { expectAccessible, newAccount, register, screenshotBoth } from "./helpers";

// scripts/web-test.sh runs a fake Google (pai-fake-google) holding the
// e-mail corpus (98 messages) as this Gmail address.
const ADDRESS = process.env.PAI_MAIL_ADDRESS ?? "mail-owner@example.com";
const CORPUS_MESSAGES = 98;

test("connect Gmail, watch it sync, read mail by class and thread, find it by search", async ({ page }) => {
  test.setTimeout(360_000);
  await register(page, newAccount("mail"));
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Mail" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Mail" })).toBeVisible();
  await expect(page.getByText("No mail account yet.")).toBeVisible();

  // Google's consent (the fake consents at once) and back to pai.
  await page.getByRole("button", { name: "Connect Gmail" }).click();
  await expect(page).toHaveURL(/\/mail\/\?connected=/);
  await expect(page.getByRole("status")).toContainText("Gmail account connected");
  const account = page.getByRole("listitem").filter({ hasText: ADDRESS });
  await expect(account).toContainText(`${CORPUS_MESSAGES} messages`, { timeout: 120_000 });
  await expect(account).toContainText("up to date");
  await expect(page.getByRole("listitem").filter({ has: page.locator(".class-financial") }).first()).toBeVisible();
  await expectAccessible(page, "mail");
  await screenshotBoth(page, "mail");

  // Only one class at a time when filtered.
  await page.getByLabel("Classification").selectOption("newsletter");
  const badges = page.locator("main ol .badge");
  await expect(badges.first()).toHaveText("newsletter");
  for (const text of await badges.allTextContents()) expect(text).toBe("newsletter");

  // An email, then its thread.
  await page.locator("main ol li a").first().click();
  await expect(page).toHaveURL(/\/mail\/email\/\?id=/);
  await expect(page.getByText("From", { exact: true })).toBeVisible();
  await expectAccessible(page, "email");
  await screenshotBoth(page, "mail-email");
  await page.getByRole("link", { name: "Show the whole thread" }).click();
  await expect(page).toHaveURL(/\/mail\/thread\/\?id=/);
  await expect(page.getByText(/\d+ messages?, oldest first/)).toBeVisible();
  await expectAccessible(page, "thread");
  await screenshotBoth(page, "mail-thread");

  // Mail is searched with documents; an email hit opens the email.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Search" }).click();
  await page.getByLabel("Search your documents").fill("Ximian Evolution codename");
  // Indexing the 98 emails takes a while after the sync: search again
  // until this one is in.
  const hit = page.getByRole("link", { name: /Open the email .*Evolution/i }).first();
  await expect(async () => {
    await page.getByRole("button", { name: "Search" }).click();
    await expect(hit).toBeVisible({ timeout: 3_000 });
  }).toPass({ timeout: 150_000 });
  await hit.click();
  await expect(page).toHaveURL(/\/mail\/email\/\?id=/);
  await expect(page.getByText("Tasmanian Devil").first()).toBeVisible();

  // Sync now, then remove the account with its mail.
  await page.goto("/mail/");
  await page.getByRole("button", { name: `Sync now ${ADDRESS}` }).click();
  await expect(page.getByRole("status")).toContainText(`Syncing ${ADDRESS}`);
  await page.getByRole("button", { name: `Remove ${ADDRESS}` }).click();
  await expect(page.getByRole("status")).toContainText("removed with its mail");
  await expect(page.getByText("No mail account yet.")).toBeVisible();
  await expect(page.getByText("No messages.")).toBeVisible();
});
