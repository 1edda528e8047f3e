"""Appointment reminders: a durable schedule (`appointment_reminder`) fed by the bot's appointment
outcomes, and a scheduler that sends each reminder once, as a template, through the customer's channel."""
