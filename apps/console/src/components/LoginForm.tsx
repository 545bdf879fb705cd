'use client';
import { useState } from 'react';
import { Alert, Button, PasswordInput, Stack, TextInput } from '@mantine/core';
import { useForm } from '@mantine/form';

export function LoginForm() {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const form = useForm({
    mode: 'uncontrolled',
    initialValues: { username: '', password: '' },
    validate: { username: (v) => (v.trim() ? null : 'Enter your username'), password: (v) => (v ? null : 'Enter your password') },
  });
  const submit = form.onSubmit(async (values) => {
    setBusy(true);
    setError(null);
    try {
      const res = await fetch('/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(values) });
      const body = (await res.json()) as { user?: { role: string }; error?: string };
      if (!res.ok || !body.user) throw new Error(body.error ?? `Sign-in failed (${res.status}).`);
      window.location.assign(body.user.role === 'ADMIN' ? '/admin' : '/play');
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  });
  return (
    <form onSubmit={submit} noValidate>
      <Stack>
        {error && <Alert color="red" role="alert">{error}</Alert>}
        <TextInput label="Username" autoComplete="username" {...form.getInputProps('username')} key={form.key('username')} />
        <PasswordInput label="Password" autoComplete="current-password" {...form.getInputProps('password')} key={form.key('password')} />
        <Button type="submit" loading={busy}>Sign in</Button>
      </Stack>
    </form>
  );
}
