import { expect, type Page } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";
import { mkdirSync } from "node:fs";
import path from "node:path";

export interface Account {
  email: string;
  username: string;
  password: string;
}

/** A fresh account's names: unique per call, so tests never share users. */
export function newAccount(tag: string): Account {
  const id = `${tag}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  return {
    email: `${id}@example.test`,
    username: id,
    password: `Sturdy-${Math.random().toString(36).slice(2, 10)}-Battery-Staple`,
  };
}

/** The administrator scripts/web-test.sh created before the tests. */
export function adminAccount(): Account | null {
  const { PAI_ADMIN_EMAIL: email, PAI_ADMIN_USERNAME: username, PAI_ADMIN_PASSWORD: password } = process.env;
  return email && username && password ? { email, username, password } : null;
}

export const CORPUS_PDF = path.resolve(__dirname, "../../testdata/pdf/dev/fin_aws_invoice_2014.pdf");

/** Registers `account` through the form; lands on the documents page signed in. */
export async function register(page: Page, account: Account): Promise<void> {
  await page.goto("/auth/register/");
  await page.getByLabel("Email").fill(account.email);
  await page.getByLabel("Username").fill(account.username);
  await page.getByLabel("Password", { exact: true }).fill(account.password);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/documents\/$/);
  await expect(page.getByRole("heading", { level: 1, name: "Documents" })).toBeVisible();
}

/** Signs in through the form (already on a sign-in page, or goes to it). */
export async function signIn(page: Page, account: Pick<Account, "email" | "password">, goto = true): Promise<void> {
  if (goto) await page.goto("/auth/login/");
  await page.getByLabel("Email").fill(account.email);
  await page.getByLabel("Password", { exact: true }).fill(account.password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** The account menu's toggle (its name ends in "account menu"). */
export function accountMenu(page: Page) {
  return page.getByRole("button", { name: /account menu/ });
}

export async function signOut(page: Page): Promise<void> {
  await accountMenu(page).click();
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
}

/** Fails on any serious or critical axe-core violation of the page as it is. */
export async function expectAccessible(page: Page, label: string): Promise<void> {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const report = bad.map((v) => `${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.map((n) => n.target.join(" ")).join("\n  ")}`);
  expect(report, `axe-core on ${label}`).toEqual([]);
}

export const SCREENSHOTS = path.resolve(__dirname, "../test-results/screenshots");

/** A full-page screenshot at test-results/screenshots/<name>-<width>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const width = page.viewportSize()?.width ?? 0;
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${width}.png`), fullPage: true });
}

/** Screenshots the page as it is at both widths (1280×800, then 390×844), back to where it was. */
export async function screenshotBoth(page: Page, name: string): Promise<void> {
  const before = page.viewportSize();
  for (const size of [{ width: 1280, height: 800 }, { width: 390, height: 844 }]) {
    await page.setViewportSize(size);
    await screenshot(page, name);
  }
  if (before) await page.setViewportSize(before);
}
