import { Center, Paper, Stack, Text, Title } from '@mantine/core';
import { redirect } from 'next/navigation';
import { currentUser } from '@/lib/auth';
import { LoginForm } from '@/components/LoginForm';

export const dynamic = 'force-dynamic';

export default async function LoginPage() {
  const me = await currentUser();
  if (me) redirect(me.role === 'ADMIN' ? '/admin' : '/play');
  return (
    <Center mih="100vh" p="md">
      <Paper withBorder shadow="sm" p="xl" w={380} maw="100%">
        <Stack>
          <Title order={1} size="h2">UVE console</Title>
          <Text c="dimmed" size="sm">Sign in with your UVE account.</Text>
          <LoginForm />
        </Stack>
      </Paper>
    </Center>
  );
}
