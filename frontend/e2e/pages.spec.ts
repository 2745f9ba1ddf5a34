import { expect, test, type Page } from "@playwright/test";
import { adminAccount, expectAccessible, newAccount, register, screenshot, signIn } from "./helpers";

// Every page, signed out and signed in (as an administrator, so the admin
// page too): no serious or critical axe-core violation, and a full-page
// screenshot at both widths under test-results/screenshots/.

const WIDTHS = [
  { width: 1280, height: 800 },
  { width: 390, height: 844 },
];

const SIGNED_OUT = [
  { name: "login", path: "/auth/login/", heading: "Sign in" },
  { name: "register", path: "/auth/register/", heading: "Create your account" },
  { name: "logout", path: "/auth/logout/", heading: "Sign out" },
];

const SIGNED_IN = [
  { name: "documents", path: "/documents/", heading: "Documents" },
  { name: "search", path: "/search/", heading: "Search" },
  { name: "ask", path: "/ask/", heading: "Ask" },
  { name: "history", path: "/history/", heading: "History" },
  { name: "profile", path: "/profile/", heading: "Your profile" },
  { name: "profile-settings", path: "/profile/settings/", heading: "Account settings" },
  { name: "profile-security", path: "/profile/security/", heading: "Security" },
  { name: "admin", path: "/admin/", heading: "Users" },
  { name: "add-account", path: "/auth/login/?add=1", heading: "Sign in to another account" },
];

/** Waits until the page shows its heading and nothing is still loading. */
async function settle(page: Page, heading: string) {
  await expect(page.getByRole("heading", { level: 1, name: heading, exact: true })).toBeVisible();
  await expect(page.getByText(/^Loading/)).toHaveCount(0);
}

for (const size of WIDTHS) {
  test.describe(`at ${size.width}×${size.height}`, () => {
    test.use({ viewport: size });

    test("signed-out pages", async ({ page }) => {
      for (const p of SIGNED_OUT) {
        await page.goto(p.path);
        await settle(page, p.heading);
        if (p.name === "logout") await expect(page.getByRole("status")).toHaveText("You are signed out.");
        await expectAccessible(page, p.path);
        await screenshot(page, p.name);
      }
      // A page that does not exist: the export's 404 page, with status 404.
      const missing = await page.goto("/no-such-page/");
      expect(missing?.status()).toBe(404);
      await expect(page.getByRole("heading", { level: 1, name: "Page not found" })).toBeVisible();
      await expectAccessible(page, "the 404 page");
      await screenshot(page, "not-found");
      // The errors next to their fields, too.
      await page.goto("/auth/register/");
      await page.getByRole("button", { name: "Create account" }).click();
      await expect(page.getByLabel("Email")).toHaveAttribute("aria-invalid", "true");
      await expectAccessible(page, "register with errors");
      await screenshot(page, "register-errors");
    });

    test("signed-in pages", async ({ page }) => {
      test.setTimeout(180_000);
      const admin = adminAccount();
      if (admin) {
        await signIn(page, admin);
        await expect(page).toHaveURL(/\/documents\/$/);
      } else {
        await register(page, newAccount("pages"));
      }
      for (const p of SIGNED_IN) {
        if (p.name === "admin" && !admin) continue;
        await page.goto(p.path);
        await settle(page, p.heading);
        await expectAccessible(page, p.path);
        await screenshot(page, p.name);
      }
      // The open account menu.
      await page.goto("/documents/");
      await settle(page, "Documents");
      await page.getByRole("button", { name: /account menu/ }).click();
      await expect(page.getByRole("button", { name: "Sign out", exact: true })).toBeVisible();
      await expectAccessible(page, "account menu");
      await screenshot(page, "account-menu");
    });
  });
}
