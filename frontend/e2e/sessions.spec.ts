import { expect, test } from "@playwright/test";
import { newAccount, register, signIn } from "./helpers";

test("the sessions page lists both browsers; revoking the second signs it out", async ({ page, browser }) => {
  const me = newAccount("sess");
  await register(page, me);

  // A second browser (its own cookies) signs into the same account.
  const second = await browser.newContext({ userAgent: "pai-e2e second browser" });
  const other = await second.newPage();
  await signIn(other, me);
  await expect(other).toHaveURL(/\/documents\/$/);

  await page.goto("/profile/security/");
  const sessions = page.getByRole("table", { name: "Active sessions" });
  const rows = sessions.getByRole("row").filter({ has: page.getByRole("cell") });
  await expect(rows).toHaveCount(2);
  const mine = rows.filter({ hasText: "This device" });
  await expect(mine).toHaveCount(1);
  await expect(mine.getByRole("button", { name: /^Revoke/ })).toHaveCount(0);
  const theirs = rows.filter({ hasText: "pai-e2e second browser" });
  await expect(theirs).toHaveCount(1);

  await theirs.getByRole("button", { name: /^Revoke session from pai-e2e second browser/ }).click();
  await expect(page.getByRole("status").filter({ hasText: /Signed out the session/ })).toBeVisible();
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toContainText("This device");

  // The second browser's next request fails and it lands on sign-in.
  await other.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "History" }).click();
  await expect(other).toHaveURL(/\/auth\/login\/\?next=%2Fhistory%2F$/);
  await expect(other.getByRole("heading", { level: 1, name: "Sign in" })).toBeVisible();
  // And a reload does not bring the session back.
  await other.reload();
  await expect(other.getByRole("heading", { level: 1, name: "Sign in" })).toBeVisible();
  await second.close();

  // This browser is still signed in.
  await page.reload();
  await expect(page.getByRole("heading", { level: 2, name: "Sessions" })).toBeVisible();
  await expect(rows).toHaveCount(1);
});
