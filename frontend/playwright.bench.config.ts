import { defineConfig } from "@playwright/test";
import base from "./playwright.config";

// `make bench-web`: the web benchmark (bench/), one worker, on the stack
// scripts/bench-web.sh starts.
export default defineConfig({
  ...base,
  testDir: "./bench",
  testMatch: /.*\.bench\.ts/,
  workers: 1,
  fullyParallel: false,
  timeout: 900_000,
  outputDir: "./test-results/bench",
});
