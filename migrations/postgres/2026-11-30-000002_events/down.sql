DROP TABLE events;
DROP TABLE business_event_counters;
