import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// `npm run dev` proxies the API (uvicorn on :8000 by default) so the page and the API share
// an origin, as they do when the API serves frontend/dist itself.
export default defineConfig({
  plugins: [react()],
  server: {
    proxy: { "/api": process.env.API_URL ?? "http://127.0.0.1:8000" },
  },
  test: {
    // The app's tests and the packages' (packages/*/tests), all in one run.
    include: ["tests/**/*.test.ts", "packages/*/tests/**/*.test.ts"],
    environment: "node",
  },
});
