import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { useState } from "react";
import { BrowserRouter, Navigate, Route, Routes } from "react-router";
import { AuthProvider, useAuth } from "./auth/session";
import { ApiProvider } from "./api/context";
import { AppRealtime } from "./components/AppRealtime";
import { Layout } from "./components/Layout";
import { ToastProvider } from "./components/Toasts";
import { Admin } from "./pages/Admin";
import { Novel } from "./pages/Novel";
import { Novels } from "./pages/Novels";
import { NotificationCenter } from "./pages/Notifications";
import { SignIn } from "./pages/SignIn";

function Routed() {
  const { session } = useAuth();
  if (!session) return <SignIn />;
  return (
    <ApiProvider jwt={session.jwt}>
      <AppRealtime key={session.userId} session={session}>
        <Routes>
          <Route element={<Layout />}>
            <Route index element={<Novels />} />
            <Route path="novels/:novelId" element={<Novel />} />
            <Route path="notifications" element={<NotificationCenter />} />
            <Route path="admin" element={<Admin />} />
            <Route path="*" element={<Navigate to="/" replace />} />
          </Route>
        </Routes>
      </AppRealtime>
    </ApiProvider>
  );
}

export function App() {
  const [queryClient] = useState(
    () => new QueryClient({ defaultOptions: { queries: { refetchOnWindowFocus: false } } }),
  );
  return (
    <QueryClientProvider client={queryClient}>
      <ToastProvider>
        <AuthProvider>
          <BrowserRouter>
            <Routed />
          </BrowserRouter>
        </AuthProvider>
      </ToastProvider>
    </QueryClientProvider>
  );
}
