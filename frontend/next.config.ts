import type { NextConfig } from "next";

// A static export: the gateway serves `out/` at `/`, one origin, no Node at run time.
const config: NextConfig = {
  output: "export",
  trailingSlash: true,
  images: { unoptimized: true },
  reactStrictMode: true,
};

export default config;
