// The access rule the domains share: a thing's owner (or holder), or an admin. Each domain builds
// its own policy on it (sessions.service's canView adds watchers, guests and invitees), so that
// "owner or admin" is decided in one place.
import type { User } from '../modules/users/users.entity';

export function isAdmin(user: Pick<User, 'role'>): boolean {
  return user.role === 'ADMIN';
}

/** The user owns (or holds) it, or is an admin. `ownerId` null: nobody owns it, so admins only. */
export function ownsOrAdmin(user: Pick<User, 'id' | 'role'>, ownerId: string | null | undefined): boolean {
  return (!!ownerId && user.id === ownerId) || isAdmin(user);
}
