import { expect, test } from "@playwright/test";
import { accountMenu, expectAccessible, newAccount, register, screenshot, signIn, signOut } from "./helpers";

test("register, sign out, sign in and see the profile", async ({ page }) => {
  const me = newAccount("reg");
  await register(page, me);
  await expect(accountMenu(page)).toContainText(me.username);

  await signOut(page);
  await expect(page).toHaveURL(/\/auth\/login\/$/);
  await expect(page.getByRole("heading", { level: 1, name: "Sign in" })).toBeVisible();
  await expect(accountMenu(page)).toHaveCount(0);

  await signIn(page, me, false);
  await expect(page).toHaveURL(/\/documents\/$/);
  await accountMenu(page).click();
  await page.getByRole("link", { name: "Profile" }).click();
  await expect(page).toHaveURL(/\/profile\/$/);
  await expect(page.getByRole("heading", { level: 1, name: "Your profile" })).toBeVisible();
  const profile = page.locator("dl");
  await expect(profile).toContainText(me.username);
  await expect(profile).toContainText(me.email);
});

test("a wrong password shows the error; five lock the account and say until when", async ({ page }) => {
  const me = newAccount("lock");
  await register(page, me);
  await signOut(page);
  await expect(page).toHaveURL(/\/auth\/login\/$/);

  const password = page.getByLabel("Password", { exact: true });
  await signIn(page, { email: me.email, password: "not-the-password-1" }, false);
  // The error sits next to the password field, which is marked invalid.
  await expect(password).toHaveAttribute("aria-invalid", "true");
  await expect(page.getByText(/invalid email, username or password/i)).toBeVisible();
  await expect(page).toHaveURL(/\/auth\/login\/$/);

  for (let attempt = 2; attempt <= 5; attempt++) {
    await password.fill(`not-the-password-${attempt}`);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("button", { name: "Sign in" })).toBeEnabled();
  }
  // After the fifth failure the account is locked, even for the right password.
  await password.fill(me.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  const alert = page.getByRole("alert").filter({ hasText: /locked/i });
  await expect(alert).toBeVisible();
  await expect(alert).toContainText(/until \S/);
  await expect(page).toHaveURL(/\/auth\/login\/$/);
  await expectAccessible(page, "sign-in, locked");
  await screenshot(page, "login-locked");
});

test("protected pages send to sign-in and come back after", async ({ page, browser }) => {
  const me = newAccount("prot");
  // A separate context registers the account; this page has no session.
  const other = await browser.newContext();
  await register(await other.newPage(), me);
  await other.close();

  for (const path of ["/documents/", "/search/", "/ask/", "/profile/security/", "/admin/"]) {
    await page.goto(path);
    await expect(page).toHaveURL(new RegExp(`/auth/login/\\?next=${encodeURIComponent(path)}$`));
  }
  await page.goto("/");
  await expect(page).toHaveURL(/\/auth\/login\/$/);
  await page.goto("/history/");
  await expect(page).toHaveURL(/\/auth\/login\/\?next=%2Fhistory%2F$/);
  await signIn(page, me, false);
  await expect(page).toHaveURL(/\/history\/$/);
  await expect(page.getByRole("heading", { level: 1, name: "History" })).toBeVisible();
  // Signed in, `/` goes to the documents; /auth/logout/ signs out.
  await page.goto("/");
  await expect(page).toHaveURL(/\/documents\/$/);
  await page.goto("/auth/logout/");
  await expect(page.getByRole("status")).toHaveText("You are signed out.");
  await page.goto("/documents/");
  await expect(page).toHaveURL(/\/auth\/login\/\?next=%2Fdocuments%2F$/);
});

test("sign in with the keyboard only", async ({ page, browser }) => {
  const me = newAccount("keys");
  const other = await browser.newContext();
  await register(await other.newPage(), me);
  await other.close();

  await page.goto("/auth/login/");
  await expect(page.getByRole("heading", { level: 1, name: "Sign in" })).toBeVisible();
  const email = page.getByLabel("Email");
  const focused = () => page.evaluate(() => document.activeElement?.getAttribute("name") ?? document.activeElement?.tagName);
  for (let i = 0; i < 15 && (await focused()) !== "email"; i++) await page.keyboard.press("Tab");
  await expect(email).toBeFocused();
  await page.keyboard.type(me.email);
  await page.keyboard.press("Tab");
  await expect(page.getByLabel("Password", { exact: true })).toBeFocused();
  await page.keyboard.type(me.password);
  await page.keyboard.press("Enter");
  await expect(page).toHaveURL(/\/documents\/$/);

  // The account menu opens and signs out with the keyboard too.
  const menu = accountMenu(page);
  for (let i = 0; i < 20 && !(await menu.evaluate((b) => b === document.activeElement)); i++) {
    await page.keyboard.press("Tab");
  }
  await expect(menu).toBeFocused();
  await page.keyboard.press("Enter");
  const signOutButton = page.getByRole("button", { name: "Sign out", exact: true });
  await expect(signOutButton).toBeVisible();
  // Escape closes it and gives the focus back; Enter opens it again.
  await page.keyboard.press("Tab");
  await page.keyboard.press("Escape");
  await expect(signOutButton).toBeHidden();
  await expect(menu).toBeFocused();
  await page.keyboard.press("Enter");
  await expect(signOutButton).toBeVisible();
  for (let i = 0; i < 10 && !(await signOutButton.evaluate((b) => b === document.activeElement)); i++) {
    await page.keyboard.press("Tab");
  }
  await expect(signOutButton).toBeFocused();
  await page.keyboard.press("Enter");
  await expect(page).toHaveURL(/\/auth\/login\/$/);
});

test("no token in localStorage, sessionStorage or a script-readable cookie", async ({ page, context }) => {
  const seen: string[] = [];
  page.on("response", async (response) => {
    if (!/\/api\/auth\/(register|login|refresh|switch)$/.test(new URL(response.url()).pathname)) return;
    try {
      const body = await response.json();
      if (typeof body.access_token === "string") seen.push(body.access_token);
      if (typeof body.refresh_token === "string") seen.push(body.refresh_token);
    } catch {
      // not JSON
    }
  });

  const readable = () =>
    page.evaluate(() => {
      const dump = (s: Storage) => Array.from({ length: s.length }, (_, i) => `${s.key(i)}=${s.getItem(s.key(i)!)}`);
      return { cookie: document.cookie, local: dump(localStorage), session: dump(sessionStorage) };
    });
  const check = async (when: string) => {
    const { cookie, local, session } = await readable();
    const all = [cookie, ...local, ...session].join("\n");
    expect(all, `${when}: a JWT-looking value`).not.toMatch(/eyJ[\w-]+\.[\w-]+/);
    for (const token of seen) expect(all.includes(token), `${when}: a token the API answered`).toBe(false);
    // The refresh token is in an HttpOnly cookie, which scripts cannot read.
    const cookies = await context.cookies();
    const refresh = cookies.filter((c) => c.name.startsWith("pai_refresh_"));
    expect(refresh.length, `${when}: a refresh cookie`).toBeGreaterThan(0);
    for (const c of refresh) {
      expect(c.httpOnly).toBe(true);
      expect(c.sameSite).toBe("Strict");
      expect(cookie).not.toContain(c.name);
    }
    for (const c of cookies.filter((c) => !c.httpOnly)) expect(c.value).not.toMatch(/^eyJ/);
  };

  await register(page, newAccount("tok"));
  expect(seen.length).toBeGreaterThan(0);
  await check("after sign-in");

  const before = seen.length;
  await page.reload();
  await expect(page.getByRole("heading", { level: 1, name: "Documents" })).toBeVisible();
  await expect(accountMenu(page)).toBeVisible();
  expect(seen.length, "the session came back from the refresh cookie").toBeGreaterThan(before);
  await check("after a reload");
});

test("changing the password: a wrong current one is shown beside its field", async ({ page }) => {
  const me = newAccount("pwd");
  await register(page, me);
  await page.goto("/profile/security/");
  const current = page.getByLabel("Current password");
  const next = page.getByLabel("New password");
  await current.fill("not-my-password-at-all");
  await next.fill("Another-Long-Enough-Passphrase-7");
  await page.getByRole("button", { name: "Change password" }).click();
  await expect(current).toHaveAttribute("aria-invalid", "true");
  await expect(current).toHaveAccessibleDescription(/current password is wrong/i);
  await expect(next).not.toHaveAttribute("aria-invalid", "true");

  // A too-short new password is the new password's error.
  await current.fill(me.password);
  await next.fill("short");
  await page.getByRole("button", { name: "Change password" }).click();
  await expect(next).toHaveAttribute("aria-invalid", "true");

  await next.fill("Another-Long-Enough-Passphrase-7");
  await page.getByRole("button", { name: "Change password" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Password changed" })).toBeVisible();
  await signOut(page);
  await signIn(page, { email: me.email, password: "Another-Long-Enough-Passphrase-7" }, false);
  await expect(page).toHaveURL(/\/documents\/$/);
});

test("deactivate the account, reactivate it from sign-in, then delete it", async ({ page }) => {
  const me = newAccount("deact");
  await register(page, me);
  await page.goto("/profile/settings/");
  await expect(page.getByRole("region", { name: "Account status" })).toContainText("active");
  await page.getByLabel("Password (to deactivate account)").fill(me.password);
  await page.getByRole("button", { name: "Deactivate account" }).click();
  await expect(page).toHaveURL(/\/auth\/login\/$/);

  await signIn(page, me, false);
  await expect(page.getByRole("alert").filter({ hasText: "This account is deactivated." })).toBeVisible();
  await page.getByRole("button", { name: "Reactivate account and sign in" }).click();
  await expect(page).toHaveURL(/\/documents\/$/);
  await expect(accountMenu(page)).toContainText(me.username);

  // Deleting it is final: off to create an account, and signing in fails.
  await page.goto("/profile/settings/");
  await page.getByLabel("Password (to delete account)").fill(me.password);
  await page.getByRole("button", { name: "Delete account" }).click();
  await expect(page).toHaveURL(/\/auth\/register\/$/);
  await signIn(page, me);
  await expect(page.getByText(/invalid email, username or password/i)).toBeVisible();
});
