"""The use cases: every write a person, a schedule or a command can start lives here.

Admin pages, views, management commands and django-q2 tasks are thin callers of these
modules, so a click, the schedule and a command behave alike:

- `directories`: add, look up, save and delete a directory (keeping its schedule in step)
- `graph`: the Graph client and settings for a tenant, built from Django settings
- `verify`: the client-credentials probe and marking a directory verified (`verify_directory`)
- `consent`: Verify Now in the browser (admin consent, sign-in, probe, confirm)
- `sync_now`: queue a sync (Sync Now, approval)
- `schedules`: each directory's django-q2 schedule
- `attention`: "needs attention": failures that need a person pause the directory's schedule
- `notifications`: e-mail when a directory starts failing or needs attention (reminders back
  off) and when it recovers
- `troubleshooting`: recent failures explained, and "Why isn't this user syncing?"
- `retention`: prune old sync runs and long-removed objects (`prune_history`, daily)

The sync engine itself is `directories.sync.engine.directory_sync`.
"""
