import { expect, test } from "@playwright/test";
import { adminAccount, newAccount, register, signIn } from "./helpers";

test("an administrator deactivates and reactivates a user", async ({ page, browser }) => {
  const admin = adminAccount();
  test.skip(!admin, "scripts/web-test.sh creates the administrator");
  const user = newAccount("adm");
  const theirs = await browser.newContext();
  const userPage = await theirs.newPage();
  await register(userPage, user);

  await signIn(page, admin!);
  await expect(page).toHaveURL(/\/documents\/$/);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Admin" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Users" })).toBeVisible();
  const row = page.getByRole("row").filter({ hasText: user.email });
  await row.getByRole("button", { name: `Deactivate ${user.username}` }).click();
  await expect(page.getByRole("status").filter({ hasText: `${user.username} deactivated.` })).toBeVisible();
  await expect(row.locator(".badge")).toHaveText("deactivated");

  // The user is signed out and cannot sign back in (nor reactivate alone).
  await userPage.reload();
  await expect(userPage).toHaveURL(/\/auth\/login\//);
  await signIn(userPage, user);
  // The sign-in answer says an administrator did it, and offers no
  // reactivation that would fail.
  await expect(userPage.getByRole("alert").filter({ hasText: /deactivated by an administrator/ })).toBeVisible();
  await expect(userPage.getByRole("button", { name: "Reactivate account and sign in" })).toHaveCount(0);
  await expect(userPage).toHaveURL(/\/auth\/login\//);

  // Reactivated, the user signs in again.
  await row.getByRole("button", { name: `Reactivate ${user.username}` }).click();
  await expect(row.locator(".badge")).toHaveText("active");
  await page.reload();
  await expect(page.getByRole("row").filter({ hasText: user.email }).locator(".badge")).toHaveText("active");
  await signIn(userPage, user, false);
  await expect(userPage).toHaveURL(/\/documents\/$/);
  await theirs.close();
});

test("a non-administrator is told the admin page is not for them", async ({ page }) => {
  await register(page, newAccount("noadm"));
  await expect(page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Admin" })).toHaveCount(0);
  await page.goto("/admin/");
  await expect(page.getByRole("alert").filter({ hasText: "This page is for administrators." })).toBeVisible();
});
