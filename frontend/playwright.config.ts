import { defineConfig, devices } from "@playwright/test";

// Browser tests against a running pai stack: `scripts/web-test.sh` starts one
// and sets PAI_URL. Debian's chromium, headless; Playwright downloads nothing.
export default defineConfig({
  testDir: "./e2e",
  // Playwright's own artifacts (traces, failure screenshots); the page
  // screenshots go to test-results/screenshots, which this does not wipe.
  outputDir: "./test-results/playwright",
  workers: Number(process.env.PW_WORKERS ?? 2),
  fullyParallel: true,
  retries: 0,
  timeout: 120_000,
  expect: { timeout: 15_000 },
  reporter: [["list"]],
  use: {
    ...devices["Desktop Chrome"],
    baseURL: process.env.PAI_URL ?? "http://127.0.0.1:8000",
    headless: true,
    viewport: { width: 1280, height: 800 },
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: ["--no-sandbox"],
    },
  },
});
